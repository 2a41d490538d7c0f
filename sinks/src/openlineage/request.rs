//! The HTTP destination: one OpenLineage event per `POST {url}/{endpoint}` with
//! `Content-Type: application/json`, `Authorization: Bearer <api key>` when a key is set,
//! optional gzip (`Content-Encoding: gzip`), the configured extra headers, a timeout and TLS
//! settings. A tenant with its own route uses its URL, endpoint, key and headers.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;
use lineage_schemas::records::DeadLetterKind;
use reqwest::Client;
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use secrecy::SecretString;
use serde::de::IgnoredAny;

use crate::config::{Compression, OpenLineageSinkConfig};
use crate::delivery::retry::{AttemptError, RetryReason, classify_status};
use crate::delivery::tenants::TenantLimits;
use crate::delivery::{Destination, SinkRecord};
use crate::error::SinkError;
use crate::http;

/// Where and how one tenant's events are posted.
#[derive(Debug, Clone)]
struct Route {
    url: String,
    headers: HeaderMap,
}

/// POSTs OpenLineage events to an HTTP backend.
#[derive(Debug)]
pub struct HttpDestination {
    client: Client,
    default: Route,
    tenants: BTreeMap<String, Route>,
    compression: Compression,
    max_body: usize,
    limits: TenantLimits,
}

/// `{url}/{endpoint}` with exactly one slash between them.
pub fn endpoint_url(url: &str, endpoint: &str) -> String {
    let endpoint = endpoint.trim_start_matches('/');
    if endpoint.is_empty() {
        return url.to_owned();
    }
    format!("{}/{endpoint}", url.trim_end_matches('/'))
}

fn headers(
    api_key: Option<&SecretString>,
    extra: &BTreeMap<String, String>,
    url: &str,
) -> Result<HeaderMap, SinkError> {
    let invalid = |reason: String| SinkError::HttpClient {
        url: url.to_owned(),
        reason,
    };
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| invalid(format!("header name `{name}`: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| invalid(format!("value of header `{name}`: {e}")))?;
        map.insert(name, value);
    }
    if let Some(key) = api_key {
        map.insert(AUTHORIZATION, http::bearer(key, "the API key", url)?);
    }
    Ok(map)
}

impl HttpDestination {
    /// The destination of `config`; `url` and `api_key` are the effective ones (config, else
    /// `OPENLINEAGE_URL` / `OPENLINEAGE_API_KEY`).
    pub fn new(
        config: &OpenLineageSinkConfig,
        url: &str,
        api_key: Option<&SecretString>,
    ) -> Result<Self, SinkError> {
        let client = http::client(config.timeout, &config.tls, url)?;
        let default = Route {
            url: endpoint_url(url, &config.endpoint),
            headers: headers(api_key, &config.headers, url)?,
        };
        let mut tenants = BTreeMap::new();
        let mut rates = BTreeMap::new();
        for (tenant, route) in &config.tenants {
            let base = route.url.as_deref().unwrap_or(url);
            let endpoint = route.endpoint.as_deref().unwrap_or(&config.endpoint);
            let mut extra = config.headers.clone();
            extra.extend(route.headers.clone());
            let key = route.api_key.as_ref().or(api_key);
            tenants.insert(
                tenant.clone(),
                Route {
                    url: endpoint_url(base, endpoint),
                    headers: headers(key, &extra, base)?,
                },
            );
            if let Some(rate) = route.rate_limit {
                rates.insert(tenant.clone(), rate);
            }
        }
        Ok(Self {
            client,
            default,
            tenants,
            compression: config.compression,
            max_body: config.max_response_body,
            limits: TenantLimits::new(config.rate_limit_per_tenant, rates),
        })
    }

    fn route(&self, tenant: Option<&str>) -> &Route {
        tenant
            .and_then(|t| self.tenants.get(t))
            .unwrap_or(&self.default)
    }

    fn body(&self, value: &[u8]) -> Result<Vec<u8>, AttemptError> {
        match self.compression {
            Compression::None => Ok(value.to_vec()),
            Compression::Gzip => {
                let mut encoder = GzEncoder::new(Vec::new(), GzLevel::fast());
                encoder
                    .write_all(value)
                    .and_then(|()| encoder.finish())
                    .map_err(|e| AttemptError::Retryable {
                        reason: RetryReason::Io,
                        retry_after: None,
                        detail: format!("compressing the event: {e}"),
                    })
            }
        }
    }
}

impl Destination for HttpDestination {
    async fn deliver(&self, record: &SinkRecord) -> Result<(), AttemptError> {
        if let Err(e) = serde_json::from_slice::<IgnoredAny>(&record.value) {
            return Err(AttemptError::Permanent {
                kind: DeadLetterKind::MalformedInput,
                status: None,
                body: None,
                detail: format!("the value is not a JSON document: {e}"),
            });
        }
        let route = self.route(record.tenant.as_deref());
        let body = self.body(&record.value)?;
        self.limits
            .until_ready(record.tenant.as_deref().unwrap_or_default())
            .await;
        let mut request = self
            .client
            .post(&route.url)
            .headers(route.headers.clone())
            .body(body);
        if self.compression == Compression::Gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = request
            .send()
            .await
            .map_err(|e| http::transport_error(&format!("POST {}", route.url), &e))?;
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let Some(error) = classify_status(status, retry_after) else {
            return Ok(());
        };
        let answer = http::read_body(response, self.max_body).await;
        let summary = crate::delivery::dead_letter::truncate(&answer, 200);
        Err(http::with_answer(
            error,
            &format!("POST {}", route.url),
            answer,
            &summary,
            |detail| detail,
        ))
    }

    async fn probe(&self) -> bool {
        // Any HTTP answer (even 404/405) shows the backend is reachable.
        http::answers(self.client.head(&self.default.url)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_join_with_one_slash() {
        assert_eq!(
            endpoint_url("http://m:5000", "api/v1/lineage"),
            "http://m:5000/api/v1/lineage"
        );
        assert_eq!(
            endpoint_url("http://m:5000/", "/api/v1/lineage"),
            "http://m:5000/api/v1/lineage"
        );
        assert_eq!(
            endpoint_url("https://dh/gms", "openapi/openlineage/api/v1/lineage"),
            "https://dh/gms/openapi/openlineage/api/v1/lineage"
        );
        assert_eq!(endpoint_url("http://m/hook", ""), "http://m/hook");
    }

    #[test]
    fn headers_carry_bearer_json_and_extras_and_hide_the_key() {
        let key = SecretString::from("s3cret".to_owned());
        let extra = [("X-Tenant".to_owned(), "acme".to_owned())].into();
        let map = headers(Some(&key), &extra, "http://m").unwrap();
        assert_eq!(map[CONTENT_TYPE], "application/json");
        assert_eq!(map[AUTHORIZATION], "Bearer s3cret");
        assert!(map[AUTHORIZATION].is_sensitive());
        assert_eq!(map["x-tenant"], "acme");
        let bad = [("bad header".to_owned(), "x".to_owned())].into();
        assert!(headers(None, &bad, "http://m").is_err());
    }

    #[test]
    fn tenants_get_their_own_route() {
        let mut config = OpenLineageSinkConfig::default();
        config.tenants.insert(
            "acme".into(),
            crate::config::TenantRoute {
                url: Some("http://acme:5000".into()),
                api_key: Some("acme-key".to_owned().into()),
                ..Default::default()
            },
        );
        let key = SecretString::from("default-key".to_owned());
        let destination = HttpDestination::new(&config, "http://shared:5000", Some(&key)).unwrap();
        let acme = destination.route(Some("acme"));
        assert_eq!(acme.url, "http://acme:5000/api/v1/lineage");
        assert_eq!(acme.headers[AUTHORIZATION], "Bearer acme-key");
        let other = destination.route(Some("other"));
        assert_eq!(other.url, "http://shared:5000/api/v1/lineage");
        assert_eq!(other.headers[AUTHORIZATION], "Bearer default-key");
        assert_eq!(destination.route(None).url, other.url);
    }

    #[test]
    fn gzip_bodies_decompress_to_the_event() {
        use std::io::Read;
        let config = OpenLineageSinkConfig {
            compression: Compression::Gzip,
            ..OpenLineageSinkConfig::default()
        };
        let destination = HttpDestination::new(&config, "http://m", None).unwrap();
        let event = br#"{"eventType":"START"}"#;
        let body = destination.body(event).unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, event);
    }
}
