//! The silences PostgreSQL keeps, shared by every replica: for the relay (its HTTP API, and what
//! it reads to apply them) and for `alert-relay silence` from its own process.

use tokio_postgres::{Client, GenericClient, Row};

use super::{Postgres, connect_once, pg};
use crate::outbox::{SilenceRow, StoreError, now_ms};
use crate::secret::Secret;

impl Postgres {
    pub async fn silences(&self, after: i64) -> Result<Vec<SilenceRow>, StoreError> {
        select(&*self.connection().await?, after).await
    }

    pub async fn add_silence(&self, silence: SilenceRow) -> Result<(), StoreError> {
        insert(&**self.connection().await?, &silence).await
    }

    pub async fn expire_silence(&self, id: &str) -> Result<bool, StoreError> {
        expire(&**self.connection().await?, id).await
    }
}

/// See [`crate::outbox::silences`].
pub async fn silences(url: &Secret) -> Result<Vec<SilenceRow>, StoreError> {
    select(&connect_once(url).await?, i64::MIN).await
}

/// See [`crate::outbox::add_silence`].
pub async fn add_silence(url: &Secret, silence: SilenceRow) -> Result<(), StoreError> {
    insert(&connect_once(url).await?, &silence).await
}

/// See [`crate::outbox::expire_silence`].
pub async fn expire_silence(url: &Secret, id: &str) -> Result<bool, StoreError> {
    expire(&connect_once(url).await?, id).await
}

async fn select(conn: &Client, after: i64) -> Result<Vec<SilenceRow>, StoreError> {
    let rows = conn
        .query(
            "SELECT id, matchers, starts_at, ends_at, comment, created_by, created_at FROM silences
             WHERE ends_at > $1 ORDER BY created_at DESC, id",
            &[&after],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(row).collect())
}

fn row(row: &Row) -> SilenceRow {
    SilenceRow {
        id: row.get(0),
        matchers: row.get(1),
        starts_at: row.get(2),
        ends_at: row.get(3),
        comment: row.get(4),
        created_by: row.get(5),
        created_at: row.get(6),
    }
}

pub(super) async fn insert(conn: &impl GenericClient, s: &SilenceRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &s.id,
            &s.matchers,
            &s.starts_at,
            &s.ends_at,
            &s.comment,
            &s.created_by,
            &s.created_at,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

pub(super) async fn expire(conn: &impl GenericClient, id: &str) -> Result<bool, StoreError> {
    let now = now_ms();
    Ok(conn
        .execute(
            "UPDATE silences SET ends_at = $1 WHERE id = $2 AND ends_at > $1",
            &[&now, &id],
        )
        .await
        .map_err(pg)?
        == 1)
}
