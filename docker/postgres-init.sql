CREATE DATABASE dagster OWNER lineage;
CREATE DATABASE marquez OWNER lineage;
