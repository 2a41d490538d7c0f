//! OpenMetadata fully qualified names: parts joined by `.`, a part holding a `.` wrapped in
//! double quotes (Java's `FullyQualifiedName.build`/`split`).

/// Quotes `name` as OpenMetadata does when building an FQN: wrapped in `"` when it holds a `.`.
pub fn quote_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('.') && !(name.starts_with('"') && name.ends_with('"') && name.len() > 1) {
        std::borrow::Cow::Owned(format!("\"{name}\""))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Builds an FQN from its parts, quoting each.
pub fn build(parts: &[&str]) -> String {
    let mut fqn = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            fqn.push('.');
        }
        fqn.push_str(&quote_name(part));
    }
    fqn
}

/// Splits an FQN into its parts, unquoting quoted parts. Never fails: an unbalanced quote
/// runs to the end of the input.
pub fn split(fqn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in fqn.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_parts_are_quoted_and_split_back() {
        let fqn = build(&["svc", "my.db", "public", "orders"]);
        assert_eq!(fqn, "svc.\"my.db\".public.orders");
        assert_eq!(split(&fqn), vec!["svc", "my.db", "public", "orders"]);
        assert_eq!(split("a.b"), vec!["a", "b"]);
        assert_eq!(build(&["t"]), "t");
    }
}
