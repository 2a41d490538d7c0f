//! OpenLineage namespace templates: `{namespace}`, `{tenant}`, `{code_location}` and
//! `{tag:KEY}` (a run tag), e.g. `"{namespace}/{tag:team}"`.
//!
//! Resolution follows dagster-openlineage: an unset value becomes the empty string, runs of `/`
//! collapse to one, leading and trailing `/` are stripped, and an empty result falls back to the
//! configured namespace. Unlike dagster-openlineage, `{tag:KEY}` sees the run's tags for every
//! event of the run (the processor keeps them), and `{tenant}` and `{code_location}` exist.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{...}` token that is not one of the supported ones.
    #[error(
        "namespace template {template:?}: unknown token {{{token}}} (supported: {{namespace}}, {{tenant}}, {{code_location}}, {{tag:KEY}})"
    )]
    UnknownToken {
        /// The template.
        template: String,
        /// The token, without braces.
        token: String,
    },
    /// `{tag:}` without a key.
    #[error("namespace template {template:?}: {{tag:}} needs a key, as in {{tag:team}}")]
    EmptyTagKey {
        /// The template.
        template: String,
    },
    /// A `{` without its `}`.
    #[error("namespace template {template:?}: unclosed {{")]
    Unclosed {
        /// The template.
        template: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Namespace,
    Tenant,
    CodeLocation,
    Tag(String),
}

/// A parsed namespace template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceTemplate {
    source: String,
    segments: Vec<Segment>,
}

impl Default for NamespaceTemplate {
    fn default() -> Self {
        Self {
            source: "{namespace}".to_owned(),
            segments: vec![Segment::Namespace],
        }
    }
}

impl fmt::Display for NamespaceTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for NamespaceTemplate {
    type Err = TemplateError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let mut segments = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| TemplateError::Unclosed {
                template: template.to_owned(),
            })?;
            let token = &after[..close];
            segments.push(match token {
                "namespace" => Segment::Namespace,
                "tenant" => Segment::Tenant,
                "code_location" => Segment::CodeLocation,
                _ => match token.strip_prefix("tag:") {
                    Some("") => {
                        return Err(TemplateError::EmptyTagKey {
                            template: template.to_owned(),
                        });
                    }
                    Some(key) => Segment::Tag(key.to_owned()),
                    None => {
                        return Err(TemplateError::UnknownToken {
                            template: template.to_owned(),
                            token: token.to_owned(),
                        });
                    }
                },
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
        })
    }
}

/// The values a template is resolved against.
#[derive(Debug, Clone, Copy)]
pub struct TemplateValues<'a> {
    /// The configured namespace.
    pub namespace: &'a str,
    /// The Dagster deployment.
    pub tenant: &'a str,
    /// The run's (or asset's) code location.
    pub code_location: Option<&'a str>,
    /// The run's tags.
    pub tags: Option<&'a BTreeMap<String, String>>,
}

impl NamespaceTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The namespace for `values`.
    pub fn resolve(&self, values: &TemplateValues<'_>) -> String {
        if let [Segment::Namespace] = self.segments.as_slice() {
            return values.namespace.to_owned();
        }
        let mut out = String::with_capacity(self.source.len() + values.namespace.len());
        for segment in &self.segments {
            let piece = match segment {
                Segment::Literal(text) => text.as_str(),
                Segment::Namespace => values.namespace,
                Segment::Tenant => values.tenant,
                Segment::CodeLocation => values.code_location.unwrap_or(""),
                Segment::Tag(key) => values
                    .tags
                    .and_then(|tags| tags.get(key))
                    .map_or("", String::as_str),
            };
            for c in piece.chars() {
                if c == '/' && (out.is_empty() || out.ends_with('/')) {
                    continue;
                }
                out.push(c);
            }
        }
        while out.ends_with('/') {
            out.pop();
        }
        if out.is_empty() {
            values.namespace.to_owned()
        } else {
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(tags: &'a BTreeMap<String, String>) -> TemplateValues<'a> {
        TemplateValues {
            namespace: "dagster",
            tenant: "prod",
            code_location: Some("lineage_sample"),
            tags: Some(tags),
        }
    }

    #[test]
    fn tag_token_reads_run_tags_and_collapses_slashes() {
        let template: NamespaceTemplate = "{namespace}/{tag:tenant}".parse().expect("parses");
        let mut tags = BTreeMap::new();
        assert_eq!(template.resolve(&values(&tags)), "dagster");
        tags.insert("tenant".to_owned(), "acme".to_owned());
        assert_eq!(template.resolve(&values(&tags)), "dagster/acme");
    }

    #[test]
    fn tenant_and_code_location_tokens() {
        let template: NamespaceTemplate = "/{tenant}//{code_location}/{tag:team}/"
            .parse()
            .expect("parses");
        let tags = BTreeMap::from([("team".to_owned(), "analytics".to_owned())]);
        assert_eq!(
            template.resolve(&values(&tags)),
            "prod/lineage_sample/analytics"
        );
    }

    #[test]
    fn empty_result_falls_back_to_namespace() {
        let template: NamespaceTemplate = "{tag:missing}".parse().expect("parses");
        assert_eq!(template.resolve(&values(&BTreeMap::new())), "dagster");
    }

    #[test]
    fn bad_templates_are_rejected_with_the_token() {
        let err = "{namespace}/{repository}"
            .parse::<NamespaceTemplate>()
            .unwrap_err();
        assert!(err.to_string().contains("{repository}"), "{err}");
        assert!(matches!(
            "{tag:}".parse::<NamespaceTemplate>(),
            Err(TemplateError::EmptyTagKey { .. })
        ));
        assert!(matches!(
            "{namespace".parse::<NamespaceTemplate>(),
            Err(TemplateError::Unclosed { .. })
        ));
    }
}
