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
    pub fn idempotent_producer_config(&self, role: &str) -> ClientConfig {
        let mut config = self.client_config(role);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "zstd")
            .set("linger.ms", "5");
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
    /// and reads only committed transactional records.
    pub fn consumer_config(&self, role: &str, group: &str) -> ClientConfig {
        let mut config = self.client_config(role);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pass_through_and_override() {
        let kafka = KafkaConfig {
            sasl_password: Some("hunter2".to_owned().into()),
            options: [("linger.ms".to_owned(), "50".to_owned())].into(),
            ..KafkaConfig::default()
        };
        let config = kafka.idempotent_producer_config("producer");
        assert_eq!(config.get("client.id"), Some("lineage-bus-producer"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        // Role defaults are applied after the pass-through options: idempotence cannot be
        // switched off by accident, but tuning like linger.ms set by the role wins too.
        assert_eq!(config.get("linger.ms"), Some("5"));
        let consumer = kafka.consumer_config("sink", "g1");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("isolation.level"), Some("read_committed"));
    }
}
