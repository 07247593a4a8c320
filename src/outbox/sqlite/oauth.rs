//! What the OAuth server keeps in SQLite: its signing key (in `meta`), the tokens it issued and
//! its authorization codes. Rare writes, made on the read connection (the busy timeout waits for
//! the writer thread's transaction) so that the writer's batches stay about events.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sqlite, off_runtime};
use crate::outbox::{AuthorizationCode, IssuedToken, StoreError, now_ms};

const SIGNING_KEY: &str = "oauth_signing_key";

impl Sqlite {
    pub async fn signing_key(&self, candidate: String) -> Result<String, StoreError> {
        off_runtime(&self.stats, move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![SIGNING_KEY, candidate],
            )?;
            Ok(conn.query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![SIGNING_KEY],
                |row| row.get(0),
            )?)
        })
        .await
    }

    pub async fn issue_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        off_runtime(&self.stats, move |conn| {
            conn.execute(
                "INSERT INTO oauth_tokens (id, client, operator, grant_type, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.id,
                    token.client,
                    token.operator,
                    token.grant,
                    token.issued_at,
                    token.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn token(&self, id: String) -> Result<Option<IssuedToken>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            Ok(conn
                .prepare_cached(&format!("{SELECT_TOKENS} WHERE id = ?1"))?
                .query_row(params![id], token_row)
                .optional()?)
        })
        .await
    }

    pub async fn keep_code(&self, code: AuthorizationCode) -> Result<(), StoreError> {
        off_runtime(&self.stats, move |conn| {
            conn.execute(
                "DELETE FROM oauth_codes WHERE expires_at < ?1",
                params![now_ms()],
            )?;
            conn.execute(
                "INSERT INTO oauth_codes (hash, client, redirect_uri, operator, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    code.hash,
                    code.client,
                    code.redirect_uri,
                    code.operator,
                    code.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn take_code(&self, hash: String) -> Result<Option<AuthorizationCode>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            Ok(conn
                .query_row(
                    "DELETE FROM oauth_codes WHERE hash = ?1
                     RETURNING hash, client, redirect_uri, operator, expires_at",
                    params![hash],
                    |row| {
                        Ok(AuthorizationCode {
                            hash: row.get(0)?,
                            client: row.get(1)?,
                            redirect_uri: row.get(2)?,
                            operator: row.get(3)?,
                            expires_at: row.get(4)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }
}

const SELECT_TOKENS: &str = "SELECT id, client, operator, grant_type, issued_at, expires_at,
     revoked_at FROM oauth_tokens";

fn token_row(row: &Row) -> Result<IssuedToken, rusqlite::Error> {
    Ok(IssuedToken {
        id: row.get(0)?,
        client: row.get(1)?,
        operator: row.get(2)?,
        grant: row.get(3)?,
        issued_at: row.get(4)?,
        expires_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

/// See [`crate::outbox::tokens`].
pub fn tokens(path: &Path) -> Result<Vec<IssuedToken>, StoreError> {
    super::admin::with_store(path, |conn: &Connection| {
        let mut statement = conn.prepare(&format!("{SELECT_TOKENS} ORDER BY issued_at DESC"))?;
        let rows = statement.query_map([], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// See [`crate::outbox::revoke_token`].
pub fn revoke_token(path: &Path, id: &str) -> Result<bool, StoreError> {
    super::admin::with_store(path, |conn| {
        Ok(conn.execute(
            "UPDATE oauth_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![now_ms(), id],
        )? == 1)
    })
}
