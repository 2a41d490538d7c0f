//! The binary's command line: configuration layering and masking, clear errors, unbuilt roles.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn lineage_bus(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lineage-bus"));
    command.args(args).env_remove("LINEAGE_BUS_CONFIG");
    for (key, _) in std::env::vars() {
        if key.starts_with("LINEAGE_BUS__") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_layers_file_and_environment_and_masks_secrets() {
    let dir = std::env::temp_dir().join(format!("lb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lineage-bus.toml");
    std::fs::write(
        &file,
        "[kafka]\nbootstrap_servers = \"broker-from-file:9092\"\nsasl_username = \"svc\"\n\
         sasl_password = \"file-secret\"\n\n[schema_registry]\nurl = \"http://registry:8081\"\n\
         password = \"registry-secret\"\n\n[tenant]\nid = \"from-file\"\n",
    )
    .unwrap();
    let output = lineage_bus(
        &["--config", file.to_str().unwrap(), "check-config"],
        &[
            ("LINEAGE_BUS__TENANT__ID", "from-env"),
            ("LINEAGE_BUS__KAFKA__SASL_PASSWORD", "env-secret"),
            (
                "LINEAGE_BUS__SINKS__OPENMETADATA__JWT_TOKEN",
                "om-jwt-secret",
            ),
        ],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("bootstrap_servers = \"broker-from-file:9092\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("id = \"from-env\""),
        "environment overrides the file: {stdout}"
    );
    assert!(stdout.contains("sasl_username = \"svc\""));
    for secret in [
        "file-secret",
        "env-secret",
        "registry-secret",
        "om-jwt-secret",
    ] {
        assert!(
            !stdout.contains(secret),
            "secret {secret} printed: {stdout}"
        );
    }
    assert_eq!(stdout.matches("\"********\"").count(), 3, "{stdout}");
    // Defaults are printed too, so the output documents the whole configuration.
    assert!(stdout.contains("grace_period = \"30s\""), "{stdout}");
}

#[test]
fn unknown_keys_and_missing_files_are_clear_errors() {
    let output = lineage_bus(
        &["check-config"],
        &[("LINEAGE_BUS__KAFKA__BOOTSTRAP", "x:1")],
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("unknown field: found `bootstrap`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bootstrap_servers"),
        "the error lists the valid keys: {stderr}"
    );

    let output = lineage_bus(
        &["--config", "/nonexistent/lineage-bus.toml", "check-config"],
        &[],
    );
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("/nonexistent/lineage-bus.toml does not exist"));
}

#[test]
fn ingest_without_a_registry_fails_with_a_message_not_a_panic() {
    let output = lineage_bus(
        &["ingest"],
        &[
            ("LINEAGE_BUS__SCHEMA_REGISTRY__URL", "http://127.0.0.1:1"),
            ("LINEAGE_BUS__ADMIN__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("schema registry"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn topics_list_prints_the_catalog() {
    let output = lineage_bus(&["topics", "list"], &[]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    for topic in lineage_schemas::catalog::TOPICS {
        assert!(
            stdout.contains(topic.name),
            "{} missing: {stdout}",
            topic.name
        );
    }
    assert!(stdout.contains("compact"));
}

#[test]
fn the_documented_config_file_is_the_defaults() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lineage-bus.toml");
    let documented = lineage_bus(&["--config", file, "check-config"], &[]);
    let defaults = lineage_bus(&["check-config"], &[]);
    assert!(documented.status.success(), "{}", text(&documented.stderr));
    assert_eq!(text(&documented.stdout), text(&defaults.stdout));
}

#[test]
fn an_openmetadata_tenant_route_is_printed_with_its_jwt_masked() {
    let dir = std::env::temp_dir().join(format!("lb-cli-om-tenant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lineage-bus.toml");
    std::fs::write(
        &file,
        "[sinks.openmetadata]\nrate_limit_per_tenant = 20\n\n\
         [sinks.openmetadata.tenants.acme]\nurl = \"http://om-acme:8585\"\n\
         jwt_token = \"acme-jwt-secret\"\nrate_limit = 5\n",
    )
    .unwrap();
    let output = lineage_bus(&["--config", file.to_str().unwrap(), "check-config"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!stdout.contains("acme-jwt-secret"), "{stdout}");
    assert!(
        stdout.contains("[sinks.openmetadata.tenants.acme]"),
        "{stdout}"
    );
    assert!(stdout.contains("url = \"http://om-acme:8585\""), "{stdout}");
    assert!(stdout.contains("rate_limit_per_tenant = 20"), "{stdout}");
    assert_eq!(stdout.matches("\"********\"").count(), 1, "{stdout}");
}
