//! The table index: every OpenMetadata table of `openmetadata.tables`, looked up by
//! (service?, database?, schema?, table) with exact or case-insensitive matching.
//!
//! Built to hold a million tables in well under 300 MB: names are interned once
//! (one arena), a table is a fixed 52-byte row of symbols, its id is 16 bytes (a parsed
//! UUID), its columns are symbols in one shared arena holding the column FQN *relative to the
//! table FQN* (so `id`, `created_at`, ... are stored once for all tables), and the table FQN
//! is derived from the parts. Tables sharing a (case-folded) name are chained through their
//! rows, so the name index is one `u32` per distinct name. Values that do not fit these
//! shapes (a non-UUID id, an FQN that is not the quoted join of the parts) go to small side
//! maps.

use std::borrow::Cow;
use std::collections::HashMap;

use lineage_schemas::records::{Column, TableSnapshot};
use serde::{Deserialize, Serialize};

use super::fqn;
use super::interner::{Interner, Sym, fold};

/// How names are compared when looking tables up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseMode {
    /// Byte-for-byte equal names only.
    Exact,
    /// Names equal after lowercasing; candidates whose case also matches come first.
    #[default]
    Insensitive,
}

/// A table's slot in the index. Valid until that table is deleted (slots are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(u32);

/// What to look up: a table name, optionally narrowed by service, database and schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableQuery<'a> {
    /// Database service name.
    pub service: Option<&'a str>,
    /// Database name.
    pub database: Option<&'a str>,
    /// Schema name.
    pub schema: Option<&'a str>,
    /// Table name.
    pub table: &'a str,
}

/// One table found by [`TableIndex::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableMatch {
    /// The table.
    pub id: TableId,
    /// Whether every given part also matched in case (always true under [`CaseMode::Exact`]).
    pub exact_case: bool,
}

const NONE: u32 = u32::MAX;
const FQN_OVERRIDE: u8 = 1;
const ID_OVERRIDE: u8 = 2;
const COLS_ABSOLUTE: u8 = 4;
const LIVE: u8 = 8;
/// Compact the column arena once this many entries are garbage and they are half of it.
const COLUMN_GC_MIN: usize = 1 << 16;

#[derive(Debug, Clone, Copy)]
struct Row {
    tenant: Sym,
    service: Sym,
    database: Sym,
    schema: Sym,
    table: Sym,
    /// Next row whose folded table name is the same, or [`NONE`].
    next: u32,
    cols_start: u32,
    cols_len: u32,
    id: [u8; 16],
    flags: u8,
}

/// The table index. See the module documentation for its layout.
#[derive(Debug, Default)]
pub struct TableIndex {
    strings: Interner,
    rows: Vec<Row>,
    free: Vec<u32>,
    /// First row of each folded table name, indexed by the folded name's symbol.
    name_heads: Vec<u32>,
    /// Column FQN suffixes (relative to the table FQN unless the row says absolute).
    columns: Vec<Sym>,
    column_garbage: usize,
    fqn_overrides: HashMap<u32, Box<str>>,
    rows_by_fqn_override: HashMap<Box<str>, u32>,
    id_overrides: HashMap<u32, Box<str>>,
    service_types: HashMap<Sym, Sym>,
    live: usize,
}

impl TableIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live tables.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the index holds no table.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Applies one record of `openmetadata.tables`: a snapshot with `deleted = true` removes
    /// the table. Returns the case-folded names of the tables touched (the names whose
    /// lookups may now answer differently).
    pub fn apply(&mut self, snapshot: &TableSnapshot) -> Vec<String> {
        if snapshot.deleted {
            return self.delete(&snapshot.fqn).into_iter().collect();
        }
        self.upsert(snapshot)
    }

    /// Inserts or replaces the table `snapshot.fqn`. Returns the case-folded names touched.
    pub fn upsert(&mut self, snapshot: &TableSnapshot) -> Vec<String> {
        let mut touched = vec![fold(&snapshot.table).into_owned()];
        let existing = self.find_fqn(&snapshot.fqn);
        let slot = match existing {
            Some(TableId(slot)) => {
                let old_name = self.strings.folded(self.rows[slot as usize].table);
                if self.strings.resolve(old_name) != touched[0] {
                    touched.push(self.strings.resolve(old_name).to_owned());
                }
                self.unlink(slot);
                slot
            }
            None => self.allocate(),
        };
        let row = self.build_row(slot, snapshot);
        self.rows[slot as usize] = row;
        self.link(slot);
        if existing.is_none() {
            self.live += 1;
        }
        self.maybe_compact_columns();
        touched
    }

    /// Removes the table with this FQN (a tombstone on `openmetadata.tables`). Returns its
    /// case-folded name, or `None` when no such table was indexed.
    pub fn delete(&mut self, table_fqn: &str) -> Option<String> {
        let TableId(slot) = self.find_fqn(table_fqn)?;
        let name = self.strings.folded(self.rows[slot as usize].table);
        let name = self.strings.resolve(name).to_owned();
        self.unlink(slot);
        let row = &mut self.rows[slot as usize];
        self.column_garbage += row.cols_len as usize;
        row.cols_len = 0;
        row.flags = 0;
        if let Some(old) = self.fqn_overrides.remove(&slot) {
            self.rows_by_fqn_override.remove(&old);
        }
        self.id_overrides.remove(&slot);
        self.free.push(slot);
        self.live -= 1;
        self.maybe_compact_columns();
        Some(name)
    }

    /// The table whose FQN is exactly `table_fqn`.
    pub fn find_fqn(&self, table_fqn: &str) -> Option<TableId> {
        if let Some(&slot) = self.rows_by_fqn_override.get(table_fqn) {
            return Some(TableId(slot));
        }
        let parts = fqn::split(table_fqn);
        let [service, database, schema, table] = parts.as_slice() else {
            return None;
        };
        let syms = [service, database, schema, table].map(|p| self.strings.get(p));
        let [Some(service), Some(database), Some(schema), Some(table)] = syms else {
            return None;
        };
        self.chain(self.strings.folded(table))
            .find(|&slot| {
                let row = &self.rows[slot as usize];
                row.flags & FQN_OVERRIDE == 0
                    && (row.service, row.database, row.schema, row.table)
                        == (service, database, schema, table)
            })
            .map(TableId)
    }

    /// Every table matching `query` under `case`, in no particular order.
    pub fn lookup(&self, query: &TableQuery<'_>, case: CaseMode) -> Vec<TableMatch> {
        let Some(name) = self.strings.get_folded(query.table) else {
            return Vec::new();
        };
        // For each given part: (folded symbol, exact symbol if interned). A part whose folded
        // form was never interned matches no table.
        let mut wanted: [Option<(Sym, Option<Sym>)>; 3] = [None; 3];
        for (slot, part) in wanted
            .iter_mut()
            .zip([query.service, query.database, query.schema])
        {
            if let Some(part) = part {
                let Some(folded) = self.strings.get_folded(part) else {
                    return Vec::new();
                };
                *slot = Some((folded, self.strings.get(part)));
            }
        }
        let exact_table = self.strings.get(query.table);
        let mut found = Vec::new();
        for slot in self.chain(name) {
            let row = &self.rows[slot as usize];
            let mut exact_case = exact_table == Some(row.table);
            let mut matches = true;
            for (want, have) in wanted.iter().zip([row.service, row.database, row.schema]) {
                if let Some((folded, exact)) = want {
                    matches &= self.strings.folded(have) == *folded;
                    exact_case &= *exact == Some(have);
                }
            }
            if matches && (exact_case || case == CaseMode::Insensitive) {
                found.push(TableMatch {
                    id: TableId(slot),
                    exact_case,
                });
            }
        }
        found
    }

    /// A view of a live table.
    pub fn get(&self, id: TableId) -> Option<TableRef<'_>> {
        let row = self.rows.get(id.0 as usize)?;
        (row.flags & LIVE != 0).then_some(TableRef {
            index: self,
            slot: id.0,
            row,
        })
    }

    /// Every live table, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = TableRef<'_>> {
        (0..self.rows.len() as u32).filter_map(|slot| self.get(TableId(slot)))
    }

    /// Bytes of heap the index holds (allocated capacity, an upper bound of what it uses).
    pub fn heap_bytes(&self) -> usize {
        let side_maps = (self.fqn_overrides.values())
            .chain(self.id_overrides.values())
            .map(|s| s.len() + 48)
            .sum::<usize>()
            + self
                .rows_by_fqn_override
                .keys()
                .map(|s| s.len() + 40)
                .sum::<usize>()
            + self.service_types.capacity() * 12;
        self.strings.heap_bytes()
            + self.rows.capacity() * size_of::<Row>()
            + (self.free.capacity() + self.name_heads.capacity()) * 4
            + self.columns.capacity() * size_of::<Sym>()
            + side_maps
    }

    fn chain(&self, folded_name: Sym) -> impl Iterator<Item = u32> + '_ {
        let head = self
            .name_heads
            .get(folded_name.index())
            .copied()
            .unwrap_or(NONE);
        std::iter::successors((head != NONE).then_some(head), |&slot| {
            let next = self.rows[slot as usize].next;
            (next != NONE).then_some(next)
        })
    }

    fn allocate(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        let slot = u32::try_from(self.rows.len())
            .ok()
            .filter(|&s| s != NONE)
            .expect("fewer than 2^32 - 1 tables");
        self.rows.push(Row {
            tenant: Sym::default(),
            service: Sym::default(),
            database: Sym::default(),
            schema: Sym::default(),
            table: Sym::default(),
            next: NONE,
            cols_start: 0,
            cols_len: 0,
            id: [0; 16],
            flags: 0,
        });
        slot
    }

    fn link(&mut self, slot: u32) {
        let name = self.strings.folded(self.rows[slot as usize].table).index();
        if self.name_heads.len() <= name {
            self.name_heads
                .resize(self.strings.len().max(name + 1), NONE);
        }
        self.rows[slot as usize].next = self.name_heads[name];
        self.name_heads[name] = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let name = self.strings.folded(self.rows[slot as usize].table).index();
        let next = self.rows[slot as usize].next;
        if self.name_heads[name] == slot {
            self.name_heads[name] = next;
            return;
        }
        let mut cursor = self.name_heads[name];
        while cursor != NONE {
            let row_next = self.rows[cursor as usize].next;
            if row_next == slot {
                self.rows[cursor as usize].next = next;
                return;
            }
            cursor = row_next;
        }
        debug_assert!(false, "table slot {slot} was not in its name chain");
    }

    fn build_row(&mut self, slot: u32, snapshot: &TableSnapshot) -> Row {
        let old = self.rows[slot as usize];
        let service = self.strings.intern(&snapshot.service);
        let parts = [
            self.strings.intern(&snapshot.tenant),
            service,
            self.strings.intern(&snapshot.database),
            self.strings.intern(&snapshot.schema),
            self.strings.intern(&snapshot.table),
        ];
        if let Some(service_type) = &snapshot.service_type {
            let service_type = self.strings.intern(service_type);
            self.service_types.insert(service, service_type);
        }
        let mut flags = LIVE;

        let derived = fqn::build(&[
            &snapshot.service,
            &snapshot.database,
            &snapshot.schema,
            &snapshot.table,
        ]);
        if let Some(old_fqn) = self.fqn_overrides.remove(&slot) {
            self.rows_by_fqn_override.remove(&old_fqn);
        }
        if snapshot.fqn != derived {
            flags |= FQN_OVERRIDE;
            let fqn: Box<str> = snapshot.fqn.as_str().into();
            self.rows_by_fqn_override.insert(fqn.clone(), slot);
            self.fqn_overrides.insert(slot, fqn);
        }

        let mut id = [0; 16];
        self.id_overrides.remove(&slot);
        let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
        match uuid::Uuid::try_parse(&snapshot.id) {
            Ok(uuid) if *uuid.hyphenated().encode_lower(&mut canonical) == *snapshot.id => {
                id = *uuid.as_bytes();
            }
            _ => {
                flags |= ID_OVERRIDE;
                self.id_overrides.insert(slot, snapshot.id.as_str().into());
            }
        }

        let mut suffixes = Vec::with_capacity(snapshot.columns.len());
        let prefix = format!("{}.", snapshot.fqn);
        let relative = flatten_columns(&snapshot.columns, "", &prefix, &mut suffixes);
        if !relative {
            flags |= COLS_ABSOLUTE;
            suffixes.clear();
            flatten_absolute(&snapshot.columns, &prefix, &mut suffixes);
        }
        let cols_len = u32::try_from(suffixes.len()).expect("fewer than 2^32 columns");
        let cols_start = if old.flags & LIVE != 0 && cols_len <= old.cols_len {
            self.column_garbage += (old.cols_len - cols_len) as usize;
            old.cols_start
        } else {
            if old.flags & LIVE != 0 {
                self.column_garbage += old.cols_len as usize;
            }
            u32::try_from(self.columns.len()).expect("column arena below 2^32 entries")
        };
        for (i, suffix) in suffixes.iter().enumerate() {
            let sym = self.strings.intern(suffix);
            match self.columns.get_mut(cols_start as usize + i) {
                Some(cell) => *cell = sym,
                None => self.columns.push(sym),
            }
        }

        let [tenant, service, database, schema, table] = parts;
        Row {
            tenant,
            service,
            database,
            schema,
            table,
            next: NONE,
            cols_start,
            cols_len,
            id,
            flags,
        }
    }

    fn maybe_compact_columns(&mut self) {
        if self.column_garbage < COLUMN_GC_MIN || self.column_garbage * 2 < self.columns.len() {
            return;
        }
        let mut compacted = Vec::with_capacity(self.columns.len() - self.column_garbage);
        for row in self.rows.iter_mut().filter(|r| r.flags & LIVE != 0) {
            let start = row.cols_start as usize;
            let new_start = compacted.len() as u32;
            compacted.extend_from_slice(&self.columns[start..start + row.cols_len as usize]);
            row.cols_start = new_start;
        }
        self.columns = compacted;
        self.column_garbage = 0;
    }
}

/// Flattens columns (children after their parent) into FQN suffixes relative to the table
/// FQN; false when a column's FQN does not start with `prefix` (the table FQN and a dot).
fn flatten_columns<'a>(
    columns: &'a [Column],
    parent: &str,
    prefix: &str,
    out: &mut Vec<Cow<'a, str>>,
) -> bool {
    for column in columns {
        let suffix: Cow<'a, str> = if column.fqn.is_empty() {
            let quoted = fqn::quote_name(&column.name);
            if parent.is_empty() {
                Cow::Owned(quoted.into_owned())
            } else {
                Cow::Owned(format!("{parent}.{quoted}"))
            }
        } else {
            match column.fqn.strip_prefix(prefix) {
                Some(suffix) => Cow::Borrowed(suffix),
                None => return false,
            }
        };
        out.push(suffix.clone());
        if !column.children.is_empty() && !flatten_columns(&column.children, &suffix, prefix, out) {
            return false;
        }
    }
    true
}

/// Flattens columns as absolute FQNs (as given, or the table FQN and the quoted name path).
fn flatten_absolute<'a>(columns: &'a [Column], parent_fqn: &str, out: &mut Vec<Cow<'a, str>>) {
    for column in columns {
        let column_fqn: Cow<'a, str> = if column.fqn.is_empty() {
            Cow::Owned(format!("{parent_fqn}{}", fqn::quote_name(&column.name)))
        } else {
            Cow::Borrowed(&column.fqn)
        };
        out.push(column_fqn.clone());
        flatten_absolute(&column.children, &format!("{column_fqn}."), out);
    }
}

/// A borrowed view of one table of the index.
#[derive(Debug, Clone, Copy)]
pub struct TableRef<'a> {
    index: &'a TableIndex,
    slot: u32,
    row: &'a Row,
}

impl<'a> TableRef<'a> {
    /// The table's slot.
    pub fn id(&self) -> TableId {
        TableId(self.slot)
    }

    /// The OpenMetadata instance the table came from.
    pub fn tenant(&self) -> &'a str {
        self.index.strings.resolve(self.row.tenant)
    }

    /// Database service name.
    pub fn service(&self) -> &'a str {
        self.index.strings.resolve(self.row.service)
    }

    /// Database service type (e.g. `Postgres`), when a snapshot of the service told it.
    pub fn service_type(&self) -> Option<&'a str> {
        let service_type = self.index.service_types.get(&self.row.service)?;
        Some(self.index.strings.resolve(*service_type))
    }

    /// Database name.
    pub fn database(&self) -> &'a str {
        self.index.strings.resolve(self.row.database)
    }

    /// Schema name.
    pub fn schema(&self) -> &'a str {
        self.index.strings.resolve(self.row.schema)
    }

    /// Table name.
    pub fn name(&self) -> &'a str {
        self.index.strings.resolve(self.row.table)
    }

    /// Fully qualified name `service.database.schema.table`, as OpenMetadata spelled it.
    pub fn fqn(&self) -> String {
        if self.row.flags & FQN_OVERRIDE != 0
            && let Some(fqn) = self.index.fqn_overrides.get(&self.slot)
        {
            return fqn.to_string();
        }
        fqn::build(&[self.service(), self.database(), self.schema(), self.name()])
    }

    /// OpenMetadata entity id.
    pub fn entity_id(&self) -> String {
        if self.row.flags & ID_OVERRIDE != 0
            && let Some(id) = self.index.id_overrides.get(&self.slot)
        {
            return id.to_string();
        }
        uuid::Uuid::from_bytes(self.row.id).hyphenated().to_string()
    }

    /// Column FQNs, parents before their children, in snapshot order.
    pub fn column_fqns(&self) -> Vec<String> {
        let table_fqn = self.fqn();
        self.column_syms()
            .iter()
            .map(|&sym| self.column_fqn_of(&table_fqn, sym))
            .collect()
    }

    /// The FQN of the top-level column `name`, matched under `case` (exact-case first).
    pub fn column_fqn(&self, name: &str, case: CaseMode) -> Option<String> {
        let quoted = fqn::quote_name(name);
        let strings = &self.index.strings;
        let leaf = |sym: Sym| -> &str {
            let text = strings.resolve(sym);
            if self.row.flags & COLS_ABSOLUTE != 0 {
                text.rsplit('.').next().unwrap_or(text)
            } else {
                text
            }
        };
        let syms = self.column_syms();
        let found = syms.iter().find(|&&s| leaf(s) == quoted).or_else(|| {
            (case == CaseMode::Insensitive)
                .then(|| syms.iter().find(|&&s| fold(leaf(s)) == fold(&quoted)))
                .flatten()
        })?;
        Some(self.column_fqn_of(&self.fqn(), *found))
    }

    fn column_syms(&self) -> &'a [Sym] {
        let start = self.row.cols_start as usize;
        &self.index.columns[start..start + self.row.cols_len as usize]
    }

    fn column_fqn_of(&self, table_fqn: &str, sym: Sym) -> String {
        let text = self.index.strings.resolve(sym);
        if self.row.flags & COLS_ABSOLUTE != 0 {
            text.to_owned()
        } else {
            format!("{table_fqn}.{text}")
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot of `service.database.schema.table` with columns `id` and `name`.
    pub(crate) fn snapshot(
        service: &str,
        database: &str,
        schema: &str,
        table: &str,
    ) -> TableSnapshot {
        let table_fqn = fqn::build(&[service, database, schema, table]);
        let column = |name: &str| Column {
            name: name.to_owned(),
            data_type: "VARCHAR".to_owned(),
            data_type_display: None,
            fqn: format!("{table_fqn}.{name}"),
            description: None,
            children: Vec::new(),
        };
        TableSnapshot {
            tenant: "om".to_owned(),
            fqn: table_fqn.clone(),
            id: uuid_for(&table_fqn),
            service: service.to_owned(),
            database: database.to_owned(),
            schema: schema.to_owned(),
            table: table.to_owned(),
            service_type: Some("Postgres".to_owned()),
            table_type: None,
            description: None,
            columns: vec![column("id"), column("name")],
            tags: Vec::new(),
            owners: Vec::new(),
            deleted: false,
            version: 0.1,
            updated_at_ms: 0,
        }
    }

    fn uuid_for(text: &str) -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let high = hasher.finish();
        1u8.hash(&mut hasher);
        let low = hasher.finish();
        uuid::Uuid::from_u64_pair(high, low).to_string()
    }

    fn fqns(index: &TableIndex, matches: &[TableMatch]) -> Vec<String> {
        let mut out: Vec<String> = matches
            .iter()
            .map(|m| index.get(m.id).expect("live match").fqn())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_row_stays_52_bytes() {
        assert_eq!(size_of::<Row>(), 52);
    }

    #[test]
    fn lookup_narrows_by_the_given_parts() {
        let mut index = TableIndex::new();
        index.upsert(&snapshot("pg", "shop", "public", "orders"));
        index.upsert(&snapshot("pg", "shop", "raw", "orders"));
        index.upsert(&snapshot("sf", "dwh", "public", "orders"));
        let q = |service, database, schema| TableQuery {
            service,
            database,
            schema,
            table: "orders",
        };
        let all = index.lookup(&q(None, None, None), CaseMode::Exact);
        assert_eq!(all.len(), 3);
        let public = index.lookup(&q(None, None, Some("public")), CaseMode::Exact);
        assert_eq!(
            fqns(&index, &public),
            vec!["pg.shop.public.orders", "sf.dwh.public.orders"]
        );
        let pg = index.lookup(&q(Some("pg"), Some("shop"), Some("raw")), CaseMode::Exact);
        assert_eq!(fqns(&index, &pg), vec!["pg.shop.raw.orders"]);
        assert!(
            index
                .lookup(&q(Some("nope"), None, None), CaseMode::Exact)
                .is_empty()
        );
    }

    #[test]
    fn case_modes_differ_and_report_exact_case() {
        let mut index = TableIndex::new();
        index.upsert(&snapshot("sf", "DWH", "PUBLIC", "ORDERS"));
        let q = TableQuery {
            service: None,
            database: Some("dwh"),
            schema: Some("public"),
            table: "orders",
        };
        assert!(index.lookup(&q, CaseMode::Exact).is_empty());
        let found = index.lookup(&q, CaseMode::Insensitive);
        assert_eq!(found.len(), 1);
        assert!(!found[0].exact_case);
        let exact = TableQuery {
            database: Some("DWH"),
            schema: Some("PUBLIC"),
            table: "ORDERS",
            ..q
        };
        let found = index.lookup(&exact, CaseMode::Insensitive);
        assert!(found[0].exact_case);
    }

    #[test]
    fn upsert_replaces_and_delete_removes() {
        let mut index = TableIndex::new();
        let mut snap = snapshot("pg", "shop", "public", "orders");
        assert_eq!(index.upsert(&snap), vec!["orders"]);
        snap.columns.truncate(1);
        index.upsert(&snap);
        assert_eq!(index.len(), 1);
        let id = index.find_fqn("pg.shop.public.orders").expect("indexed");
        let table = index.get(id).expect("live");
        assert_eq!(table.column_fqns(), vec!["pg.shop.public.orders.id"]);
        assert_eq!(table.entity_id(), snap.id);
        assert_eq!(table.service_type(), Some("Postgres"));
        assert_eq!(
            index.delete("pg.shop.public.orders"),
            Some("orders".to_owned())
        );
        assert!(index.is_empty());
        assert!(index.get(id).is_none());
        assert!(index.find_fqn("pg.shop.public.orders").is_none());
        assert_eq!(index.delete("pg.shop.public.orders"), None);
        let mut deleted = snapshot("pg", "shop", "public", "orders");
        index.apply(&deleted);
        deleted.deleted = true;
        index.apply(&deleted);
        assert!(index.is_empty());
    }

    #[test]
    fn odd_fqns_ids_and_nested_columns_are_kept() {
        let mut index = TableIndex::new();
        let mut snap = snapshot("pg", "my.db", "public", "events");
        assert_eq!(snap.fqn, "pg.\"my.db\".public.events");
        snap.id = "not-a-uuid".to_owned();
        snap.columns[0].children = vec![Column {
            name: "city".to_owned(),
            data_type: "VARCHAR".to_owned(),
            data_type_display: None,
            fqn: format!("{}.id.city", snap.fqn),
            description: None,
            children: Vec::new(),
        }];
        index.upsert(&snap);
        let table = index
            .get(index.find_fqn(&snap.fqn).expect("found"))
            .expect("live");
        assert_eq!(table.entity_id(), "not-a-uuid");
        assert_eq!(table.database(), "my.db");
        assert_eq!(
            table.column_fqns(),
            vec![
                "pg.\"my.db\".public.events.id",
                "pg.\"my.db\".public.events.id.city",
                "pg.\"my.db\".public.events.name",
            ]
        );
        assert_eq!(
            table.column_fqn("NAME", CaseMode::Insensitive).as_deref(),
            Some("pg.\"my.db\".public.events.name")
        );
        assert_eq!(table.column_fqn("NAME", CaseMode::Exact), None);

        // An FQN that is not the quoted join of the parts is kept as given.
        let mut odd = snapshot("pg", "shop", "public", "odd");
        odd.fqn = "pg.shop.public.odd_alias".to_owned();
        odd.columns.clear();
        index.upsert(&odd);
        let id = index
            .find_fqn("pg.shop.public.odd_alias")
            .expect("by override");
        assert_eq!(
            index.get(id).expect("live").fqn(),
            "pg.shop.public.odd_alias"
        );
        assert!(index.find_fqn("pg.shop.public.odd").is_none());
        index.delete("pg.shop.public.odd_alias");
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn column_arena_is_compacted_after_churn() {
        let mut index = TableIndex::new();
        for round in 0..3 {
            for i in 0..40_000 {
                let mut snap = snapshot("pg", "db", "s", &format!("t{i}"));
                if round % 2 == 1 {
                    snap.columns.push(snap.columns[0].clone());
                    snap.columns[2].name = "extra".to_owned();
                    snap.columns[2].fqn = format!("{}.extra", snap.fqn);
                }
                index.upsert(&snap);
            }
        }
        assert_eq!(index.len(), 40_000);
        assert!(index.columns.len() <= 40_000 * 3 + COLUMN_GC_MIN);
        let table = index
            .get(index.find_fqn("pg.db.s.t7").expect("found"))
            .expect("live");
        assert_eq!(
            table.column_fqns(),
            vec!["pg.db.s.t7.id", "pg.db.s.t7.name"]
        );
    }
}
