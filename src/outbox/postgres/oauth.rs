//! What the OAuth server keeps in PostgreSQL: its signing key (in `alert_relay_meta`), the tokens
//! it issued and its authorization codes, shared by every replica.

use tokio_postgres::Row;

use super::{Postgres, connect_once, pg};
use crate::outbox::{AuthorizationCode, IssuedToken, StoreError, now_ms};
use crate::secret::Secret;

const SIGNING_KEY: &str = "oauth_signing_key";
const SELECT_TOKENS: &str = "SELECT id, client, operator, grant_type, issued_at, expires_at,
     revoked_at FROM oauth_tokens";

impl Postgres {
    pub async fn signing_key(&self, candidate: String) -> Result<String, StoreError> {
        let conn = self.connection().await?;
        conn.execute(
            "INSERT INTO alert_relay_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&SIGNING_KEY, &candidate],
        )
        .await
        .map_err(pg)?;
        let row = conn
            .query_one(
                "SELECT value FROM alert_relay_meta WHERE key = $1",
                &[&SIGNING_KEY],
            )
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    pub async fn issue_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        self.connection()
            .await?
            .execute(
                "INSERT INTO oauth_tokens (id, client, operator, grant_type, issued_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &token.id,
                    &token.client,
                    &token.operator,
                    &token.grant,
                    &token.issued_at,
                    &token.expires_at,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<IssuedToken>, StoreError> {
        let row = self
            .connection()
            .await?
            .query_opt(&format!("{SELECT_TOKENS} WHERE id = $1"), &[&id])
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(token_row))
    }

    pub async fn keep_code(&self, code: AuthorizationCode) -> Result<(), StoreError> {
        let conn = self.connection().await?;
        conn.execute(
            "DELETE FROM oauth_codes WHERE expires_at < $1",
            &[&now_ms()],
        )
        .await
        .map_err(pg)?;
        conn.execute(
            "INSERT INTO oauth_codes (hash, client, redirect_uri, operator, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &code.hash,
                &code.client,
                &code.redirect_uri,
                &code.operator,
                &code.expires_at,
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    pub async fn take_code(&self, hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = self
            .connection()
            .await?
            .query_opt(
                "DELETE FROM oauth_codes WHERE hash = $1
                 RETURNING hash, client, redirect_uri, operator, expires_at",
                &[&hash],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|row| AuthorizationCode {
            hash: row.get(0),
            client: row.get(1),
            redirect_uri: row.get(2),
            operator: row.get(3),
            expires_at: row.get(4),
        }))
    }
}

fn token_row(row: &Row) -> IssuedToken {
    IssuedToken {
        id: row.get(0),
        client: row.get(1),
        operator: row.get(2),
        grant: row.get(3),
        issued_at: row.get(4),
        expires_at: row.get(5),
        revoked_at: row.get(6),
    }
}

/// See [`crate::outbox::tokens`].
pub async fn tokens(url: &Secret) -> Result<Vec<IssuedToken>, StoreError> {
    let rows = connect_once(url)
        .await?
        .query(&format!("{SELECT_TOKENS} ORDER BY issued_at DESC"), &[])
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(token_row).collect())
}

/// See [`crate::outbox::revoke_token`].
pub async fn revoke_token(url: &Secret, id: &str) -> Result<bool, StoreError> {
    let changed = connect_once(url)
        .await?
        .execute(
            "UPDATE oauth_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            &[&now_ms(), &id],
        )
        .await
        .map_err(pg)?;
    Ok(changed == 1)
}
