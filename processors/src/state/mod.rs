//! The processor's state, rebuilt from the compacted topics: the table index
//! (`openmetadata.tables`) and the asset graph (`dagster.assets`).

pub mod assets;
pub mod fqn;
pub(crate) mod interner;
pub mod tables;

pub use assets::{AssetGraph, AssetKeyRef, AssetRef, DepsChange};
pub use tables::{CaseMode, TableId, TableIndex, TableMatch, TableQuery, TableRef};
