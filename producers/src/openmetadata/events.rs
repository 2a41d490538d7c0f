//! OpenMetadata's change events (`GET /api/v1/events`, `ChangeEvent` of the OpenMetadata
//! spec) and what one poll makes of them: which tables to read again, which to tombstone.
//!
//! OpenMetadata answers every event with `timestamp >= ?`, oldest first. The producer reads
//! from `event_overlap` before its cursor, so an event may come twice: events the topic already
//! reflects (same table id, `currentVersion` and a snapshot at least as recent) are skipped
//! without a request; the others are folded per table id into "read it again" (the table's
//! current state decides) or, for a hard delete, "tombstone it".

use std::collections::HashMap;

use serde::Deserialize;

use super::state::Index;

/// `ChangeEvent.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventType {
    /// A table was created.
    EntityCreated,
    /// A table changed.
    EntityUpdated,
    /// A soft-deleted table was restored (OpenMetadata ≥ 1.x reports it with `entityRestored`).
    EntityRestored,
    /// A table was soft-deleted.
    EntitySoftDeleted,
    /// A table was hard-deleted.
    EntityDeleted,
    /// Any other event type (newer servers add some).
    #[serde(other)]
    Other,
}

/// One `ChangeEvent` (the fields the producer uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// What happened.
    pub event_type: EventType,
    /// `table` for the events the producer asks for.
    pub entity_type: String,
    /// The table id.
    pub entity_id: String,
    /// The table FQN at the time of the event.
    #[serde(default)]
    pub entity_fully_qualified_name: Option<String>,
    /// The table version after the change.
    #[serde(default)]
    pub current_version: Option<f64>,
    /// When the change was made, ms since the Unix epoch.
    pub timestamp: i64,
}

/// `GET /api/v1/events` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct EventList {
    /// The events, oldest first.
    pub(crate) data: Vec<ChangeEvent>,
}

/// What to do about a batch of events.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Table ids to read again (their current state decides), in order of first change.
    pub(crate) fetch: Vec<String>,
    /// FQNs to tombstone (hard-deleted tables the topic holds).
    pub(crate) tombstone: Vec<String>,
    /// Events skipped: the topic already reflects them, out of scope, or not about a table.
    pub(crate) skipped: usize,
    /// The latest event timestamp seen, if any.
    pub(crate) latest: Option<i64>,
}

/// Folds `events` (oldest first) into a [`Plan`] against what the topic holds; events of
/// tables outside the producer's scope (by their FQN's service) are left out.
pub(crate) fn plan(events: &[ChangeEvent], index: &Index, in_scope: impl Fn(&str) -> bool) -> Plan {
    let mut plan = Plan::default();
    // table id -> the last relevant event (index into `events`)
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        plan.latest = plan.latest.max(Some(event.timestamp));
        if event.entity_type != "table" || event.event_type == EventType::Other {
            plan.skipped += 1;
            continue;
        }
        let scoped = event
            .entity_fully_qualified_name
            .as_deref()
            .is_none_or(&in_scope);
        if !scoped || reflected(event, index) {
            plan.skipped += 1;
            continue;
        }
        if last.insert(event.entity_id.as_str(), i).is_none() {
            order.push(event.entity_id.as_str());
        }
    }
    for id in order {
        let event = &events[last[id]];
        if event.event_type == EventType::EntityDeleted {
            // A hard-deleted id never comes back: no need to ask.
            if let Some(fqn) = index.fqn_of(id) {
                plan.tombstone.push(fqn.to_owned());
            }
        } else {
            plan.fetch.push(id.to_owned());
        }
    }
    plan
}

/// True when the topic already reflects `event`: a delete of a table it does not hold, or a
/// change the snapshot of the same table at the same version and no older already covers.
fn reflected(event: &ChangeEvent, index: &Index) -> bool {
    let held = index
        .fqn_of(&event.entity_id)
        .and_then(|fqn| index.get(fqn).map(|known| (fqn, known)));
    match event.event_type {
        EventType::EntitySoftDeleted | EventType::EntityDeleted => held.is_none(),
        _ => held.is_some_and(|(fqn, known)| {
            event.current_version.is_some_and(|version| {
                known.fingerprint.is_some_and(|fp| {
                    fp.is_version(version) && fp.updated_at_ms() >= event.timestamp
                })
            }) && event
                .entity_fully_qualified_name
                .as_deref()
                .is_none_or(|name| name == fqn)
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;
    use crate::openmetadata::state::{Fingerprint, Known};

    fn event(kind: EventType, id: &str, fqn: &str, version: f64, ts: i64) -> ChangeEvent {
        ChangeEvent {
            event_type: kind,
            entity_type: "table".into(),
            entity_id: id.into(),
            entity_fully_qualified_name: Some(fqn.into()),
            current_version: Some(version),
            timestamp: ts,
        }
    }

    fn index() -> Index {
        Index::new(HashMap::from([
            (
                "pg.d.s.a".to_owned(),
                Known {
                    id: "A".into(),
                    fingerprint: Some(Fingerprint::new(0.2, 100)),
                },
            ),
            (
                "pg.d.s.b".to_owned(),
                Known {
                    id: "B".into(),
                    fingerprint: Some(Fingerprint::new(0.1, 50)),
                },
            ),
        ]))
    }

    #[test]
    fn events_the_topic_reflects_are_skipped_without_a_request() {
        use EventType::*;
        let events = [
            event(EntityUpdated, "A", "pg.d.s.a", 0.2, 100), // what the topic holds
            event(EntityCreated, "B", "pg.d.s.b", 0.1, 50),
            event(EntityDeleted, "Z", "pg.d.s.z", 0.3, 60), // never held
        ];
        let plan = plan(&events, &index(), |_| true);
        assert_eq!(
            plan,
            Plan {
                skipped: 3,
                latest: Some(100),
                ..Plan::default()
            }
        );
    }

    #[test]
    fn changes_are_read_again_once_per_table_and_hard_deletes_tombstoned() {
        use EventType::*;
        let events = [
            event(EntityUpdated, "A", "pg.d.s.a", 0.3, 110),
            event(EntityCreated, "C", "pg.d.s.c", 0.1, 120),
            event(EntityUpdated, "A", "pg.d.s.a", 0.4, 130),
            event(EntityDeleted, "B", "pg.d.s.b", 0.1, 140),
            event(EntitySoftDeleted, "C", "pg.d.s.c", 0.2, 150), // C is not held: skipped
            event(EntityCreated, "X", "other.d.s.x", 0.1, 160),  // out of scope
            event(Other, "A", "pg.d.s.a", 0.4, 170),
        ];
        let plan = plan(&events, &index(), |fqn| fqn.starts_with("pg."));
        assert_eq!(plan.fetch, ["A", "C"]);
        assert_eq!(plan.tombstone, ["pg.d.s.b"]);
        assert_eq!((plan.skipped, plan.latest), (3, Some(170)));
    }

    #[test]
    fn a_soft_delete_or_rename_of_a_held_table_is_read_again() {
        use EventType::*;
        let events = [
            event(EntitySoftDeleted, "A", "pg.d.s.a", 0.3, 110),
            event(EntityUpdated, "B", "pg.d.s.renamed", 0.1, 50),
        ];
        let plan = plan(&events, &index(), |_| true);
        assert_eq!(plan.fetch, ["A", "B"]);
    }

    #[test]
    fn change_event_json_of_the_spec_parses() {
        let json = r#"{"data": [{"eventType": "entitySoftDeleted", "entityType": "table",
            "entityId": "5d1c8e2a-0000-4000-8000-000000000001",
            "entityFullyQualifiedName": "pg.shop.public.\"t.1\"", "previousVersion": 0.1,
            "currentVersion": 0.2, "userName": "admin", "timestamp": 1700000000000},
            {"eventType": "entityFieldsChanged", "entityType": "table", "entityId": "x",
             "timestamp": 1}], "paging": {"total": 2}}"#;
        let list: EventList = serde_json::from_str(json).unwrap();
        assert_eq!(list.data[0].event_type, EventType::EntitySoftDeleted);
        assert_eq!(list.data[0].current_version, Some(0.2));
        assert_eq!(list.data[1].event_type, EventType::Other);
    }
}
