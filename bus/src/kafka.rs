//! Kafka client configuration for every role.

use rdkafka::ClientConfig;
use secrecy::ExposeSecret;

use crate::config::KafkaConfig;

impl KafkaConfig {
    /// The librdkafka settings shared by every client of `role` (used in `client.id`).
    pub fn client_config(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("{}-{role}", self.client_id))
            .set("security.protocol", &self.security_protocol);
        if let Some(mechanism) = &self.sasl_mechanism {
            config.set("sasl.mechanism", mechanism);
        }
        if let Some(user) = &self.sasl_username {
            config.set("sasl.username", user);
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", password.expose_secret());
        }
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }

    /// Settings of an idempotent producer: no duplicates or reordering on retries.
    /// Compression (lz4: cheapest per record) and `linger.ms` are defaults that
    /// `[kafka.options]` may override; idempotence and `acks=all` are guarantees it cannot.
    pub fn idempotent_producer_config(&self, role: &str) -> ClientConfig {
        let mut config = self.client_config(role);
        set_default(&mut config, "compression.type", "lz4");
        set_default(&mut config, "linger.ms", "5");
        config.set("enable.idempotence", "true").set("acks", "all");
        config
    }

    /// Settings of a transactional producer with `transactional_id`.
    pub fn transactional_producer_config(
        &self,
        role: &str,
        transactional_id: &str,
    ) -> ClientConfig {
        let mut config = self.idempotent_producer_config(role);
        config.set("transactional.id", transactional_id);
        config
    }

    /// Settings of a consumer in `group` that commits offsets itself (never automatically)
    /// and reads only committed transactional records. `auto.offset.reset` defaults to
    /// `earliest` and may be overridden.
    pub fn consumer_config(&self, role: &str, group: &str) -> ClientConfig {
        let mut config = self.client_config(role);
        set_default(&mut config, "auto.offset.reset", "earliest");
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed");
        config
    }
}

/// Sets `key` unless `[kafka.options]` already did.
fn set_default(config: &mut ClientConfig, key: &str, value: &str) {
    if config.get(key).is_none() {
        config.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pass_through_and_override() {
        let kafka = KafkaConfig {
            sasl_password: Some("hunter2".to_owned().into()),
            options: [
                ("linger.ms".to_owned(), "50".to_owned()),
                ("enable.idempotence".to_owned(), "false".to_owned()),
                ("isolation.level".to_owned(), "read_uncommitted".to_owned()),
            ]
            .into(),
            ..KafkaConfig::default()
        };
        let config = kafka.idempotent_producer_config("producer");
        assert_eq!(config.get("client.id"), Some("lineage-bus-producer"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        // Guarantees cannot be switched off by the pass-through options; tuning can be set.
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("compression.type"), Some("lz4"));
        let consumer = kafka.consumer_config("sink", "g1");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("isolation.level"), Some("read_committed"));
    }
}
