//! The schema and its migrations, versioned by SQLite's `user_version`.
//! Migrations only ever append: an old database opens in a newer binary, and a database from
//! a newer binary is refused rather than misread.

use std::path::Path;

use rusqlite::Connection;

use super::storage_error;
use crate::error::{Error, Result};

/// Each entry moves the schema one version up; the index + 1 is the version it produces.
const MIGRATIONS: &[&str] = &[
    // Version 1: tasks with their frozen types and audit trail, workers, settings.
    "
    CREATE TABLE task_types (
        digest TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_ts INTEGER NOT NULL
    );
    CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        tags TEXT NOT NULL,
        env TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        started_ts INTEGER NOT NULL DEFAULT 0,
        last_updated_ts INTEGER NOT NULL,
        finished_ts INTEGER NOT NULL DEFAULT 0,
        timeout INTEGER NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT NOT NULL DEFAULT '000000000000000000000000',
        pid INTEGER NOT NULL DEFAULT 0,
        result_dir TEXT NOT NULL,
        type_digest TEXT NOT NULL REFERENCES task_types(digest),
        exit_code INTEGER,
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE INDEX tasks_queue ON tasks(priority DESC, seq) WHERE state = 'WAITING';
    CREATE INDEX tasks_by_state ON tasks(state, seq);
    CREATE INDEX tasks_by_type ON tasks(type, seq);
    CREATE INDEX tasks_by_worker ON tasks(worker_id) WHERE state IN ('CLAIMED', 'RUNNING');
    CREATE TABLE task_events (
        task_seq INTEGER NOT NULL REFERENCES tasks(seq) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT
    );
    CREATE INDEX task_events_by_task ON task_events(task_seq);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        tags TEXT NOT NULL DEFAULT '[]',
        pid INTEGER NOT NULL DEFAULT 0,
        stopped INTEGER NOT NULL DEFAULT 0,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        force_stop INTEGER NOT NULL DEFAULT 0,
        check_interval REAL NOT NULL DEFAULT 2,
        started_ts INTEGER NOT NULL DEFAULT 0,
        logfile TEXT NOT NULL DEFAULT '',
        daemon INTEGER NOT NULL DEFAULT 0,
        last_heard_ts INTEGER NOT NULL DEFAULT 0,
        lost INTEGER NOT NULL DEFAULT 0,
        launched INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
    // Version 2: the files uploaded with each task, so a retry can send them again. Tasks
    // from before it have no rows: which of their files were uploads is not known.
    "
    CREATE TABLE task_uploads (
        task_seq INTEGER NOT NULL REFERENCES tasks(seq) ON DELETE CASCADE,
        path TEXT NOT NULL,
        PRIMARY KEY (task_seq, path)
    );
    ",
    // Version 3: when a worker's held heartbeat ends, and which hold that is. A worker is
    // alive while a heartbeat of its is held open, so its lease runs from the later of the
    // two times.
    "
    ALTER TABLE workers ADD COLUMN held_until_ts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE workers ADD COLUMN hold_id INTEGER NOT NULL DEFAULT 0;
    ",
];

/// Brings the database at `path` up to the newest schema, in one transaction.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<()> {
    let version: usize = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|error| storage_error(path, &error))?;
    if version > MIGRATIONS.len() {
        return Err(Error::Invalid(format!(
            "{} was written by a newer Blanket (schema {version}, this one knows {}): upgrade Blanket or use another data directory",
            path.display(),
            MIGRATIONS.len()
        )));
    }
    if version == MIGRATIONS.len() {
        return Ok(());
    }
    let transaction = connection
        .transaction()
        .map_err(|error| storage_error(path, &error))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        transaction
            .execute_batch(migration)
            .map_err(|error| storage_error(path, &error))?;
        transaction
            .pragma_update(None, "user_version", index + 1)
            .map_err(|error| storage_error(path, &error))?;
        tracing::info!(version = index + 1, "database schema migrated");
    }
    transaction
        .commit()
        .map_err(|error| storage_error(path, &error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_reaches_the_newest_version_and_stays_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        let mut connection = Connection::open(&path).unwrap();
        migrate(&mut connection, &path).unwrap();
        migrate(&mut connection, &path).unwrap();
        let version: usize = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[tokio::test]
    async fn a_version_1_database_migrates_and_its_tasks_have_no_recorded_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(include_str!("../../tests/fixtures/schema-v1.sql"))
            .unwrap();
        let store = crate::store::Store::open(&path).unwrap();
        let tasks = store
            .list_tasks(crate::filter::TaskFilter::default())
            .await
            .unwrap();
        let types: Vec<&str> = tasks.iter().map(|task| task.task_type.as_str()).collect();
        assert_eq!(types, ["echo_task", "wordcount_task"]);
        for task in &tasks {
            assert!(store.task_uploads(task.id).await.unwrap().is_empty());
            assert_eq!(store.task_events(task.id).await.unwrap().len(), 1);
        }
        store.close().await;
        let connection = Connection::open(&path).unwrap();
        let version: usize = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn a_database_from_a_newer_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        let mut connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 999).unwrap();
        let error = migrate(&mut connection, &path).unwrap_err().to_string();
        assert!(error.contains("newer Blanket"), "{error}");
    }
}
