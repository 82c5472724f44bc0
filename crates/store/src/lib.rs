//! The only crate that knows SQL: SQLite and PostgreSQL behind one API, migrations, jobs.
