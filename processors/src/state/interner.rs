//! A compact string interner: every distinct string is stored once in one arena and named by
//! a `u32` symbol. The hash table holds only symbols (4 bytes a slot) and hashes through the
//! arena, so an interned string costs its bytes plus about 12 bytes.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// An interned string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sym(u32);

impl Sym {
    /// The symbol's position, for side tables indexed by symbol.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// The case-folded (lowercase) form of a name, borrowed when folding changes nothing.
pub(crate) fn fold(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_uppercase) {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Strings in one arena, each with its case-folded twin.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    arena: String,
    /// `ends[i]` is where symbol `i` ends in `arena`; it starts where `i - 1` ends.
    ends: Vec<u32>,
    /// `folded[i]` is the symbol of `fold(str(i))` (itself when already folded).
    folded: Vec<u32>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    /// The string of `sym`.
    pub(crate) fn resolve(&self, sym: Sym) -> &str {
        let end = self.ends[sym.index()] as usize;
        let start = match sym.index() {
            0 => 0,
            i => self.ends[i - 1] as usize,
        };
        &self.arena[start..end]
    }

    /// The folded twin of `sym`.
    pub(crate) fn folded(&self, sym: Sym) -> Sym {
        Sym(self.folded[sym.index()])
    }

    /// The symbol of `s`, if interned.
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&sym| self.resolve(Sym(sym)) == s)
            .map(|&sym| Sym(sym))
    }

    /// The symbol of the folded form of `s`, if interned.
    pub(crate) fn get_folded(&self, s: &str) -> Option<Sym> {
        self.get(&fold(s))
    }

    /// Interns `s` (and its folded form).
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(sym) = self.get(s) {
            return sym;
        }
        let sym = self.push(s);
        let folded = fold(s);
        let folded_sym = match folded {
            Cow::Borrowed(_) => sym,
            Cow::Owned(f) => match self.get(&f) {
                Some(existing) => existing,
                None => self.push(&f),
            },
        };
        self.folded[sym.index()] = folded_sym.0;
        sym
    }

    /// Appends a new symbol folded to itself; callers fix `folded` when it differs.
    fn push(&mut self, s: &str) -> Sym {
        let id = u32::try_from(self.ends.len()).expect("fewer than 2^32 interned strings");
        self.arena.push_str(s);
        let end = u32::try_from(self.arena.len()).expect("interned strings below 4 GiB");
        self.ends.push(end);
        self.folded.push(id);
        let hash = self.hasher.hash_one(s);
        let Self {
            arena,
            ends,
            table,
            hasher,
            ..
        } = self;
        table.insert_unique(hash, id, |&other| {
            let end = ends[other as usize] as usize;
            let start = match other {
                0 => 0,
                i => ends[i as usize - 1] as usize,
            };
            hasher.hash_one(&arena[start..end])
        });
        Sym(id)
    }

    /// Number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of heap the interner holds (capacities, not lengths).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + (self.ends.capacity() + self.folded.capacity()) * 4
            // a hashbrown slot is the value plus one control byte
            + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_folds_case() {
        let mut interner = Interner::default();
        let a = interner.intern("Orders");
        let b = interner.intern("orders");
        assert_eq!(interner.intern("Orders"), a);
        assert_ne!(a, b);
        assert_eq!(interner.folded(a), b);
        assert_eq!(interner.folded(b), b);
        assert_eq!(interner.resolve(a), "Orders");
        assert_eq!(interner.resolve(b), "orders");
        assert_eq!(interner.get("ORDERS"), None);
        assert_eq!(interner.get_folded("ORDERS"), Some(b));
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn many_strings_survive_growth() {
        let mut interner = Interner::default();
        let syms: Vec<Sym> = (0..10_000)
            .map(|i| interner.intern(&format!("t{i}")))
            .collect();
        for (i, sym) in syms.iter().enumerate() {
            assert_eq!(interner.resolve(*sym), format!("t{i}"));
            assert_eq!(interner.get(&format!("t{i}")), Some(*sym));
        }
        let empty = interner.intern("");
        assert_eq!(interner.resolve(empty), "");
    }
}
