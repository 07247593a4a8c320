//! The writer thread: the only write connection. It takes every write waiting, applies them in
//! one transaction, commits, then answers each caller and wakes the workers concerned.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::packed::pack;
use crate::outbox::disposition::{Disposition, Row, Trigger, disposition};
use crate::outbox::writes::{Applied, Write, answer};
use crate::outbox::{
    Accepted, BuildNotification, DueGroup, FLUSH_BATCH, Finish, Joining, Member, StoreError,
    Wakers, now_ms,
};
use crate::outbox::{NewAction, NewEvent};

/// Writes taken into one transaction at most; enough to absorb every open connection at once.
const MAX_BATCH: usize = 1024;

/// Rows one prune write deletes at most, so that a long prune never holds up accepts for more
/// than a few milliseconds: the caller sends prune writes until one deletes fewer.
pub(super) const PRUNE_BATCH: usize = 1000;

/// How long the outcomes of attempts may wait for a disk flush: see [`Flush`].
const OUTCOMES_UNSYNCED_FOR: Duration = Duration::from_millis(100);

/// When a commit waits for the disk. An accepted event is on disk before its sender hears so: a
/// batch with any write other than an attempt's outcome commits with `synchronous = FULL`. A
/// batch of outcomes alone commits without the flush (`NORMAL`: the log reaches the system, and
/// a crash of the relay loses none of it) as long as the last flush is under
/// [`OUTCOMES_UNSYNCED_FOR`] old: only a power cut can lose those outcomes, and the deliveries
/// they record are then made again, as at-least-once allows. Under a steady flow of deliveries
/// this spares most of their commits a flush, each a trip to the disk.
struct Flush {
    /// When a commit last flushed the log.
    flushed: Instant,
    /// Whether the connection is set to flush at each commit.
    full: bool,
}

impl Flush {
    /// Whether a commit of `batch` at `now` flushes the log.
    fn flushes(&self, batch: &[Write], now: Instant) -> bool {
        now.duration_since(self.flushed) >= OUTCOMES_UNSYNCED_FOR
            || batch.iter().any(|w| !matches!(w, Write::Finish { .. }))
    }

    /// Sets the connection for a commit of `batch`.
    fn before(&mut self, conn: &Connection, batch: &[Write]) -> Result<(), rusqlite::Error> {
        let now = Instant::now();
        let full = self.flushes(batch, now);
        if full != self.full {
            conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.full = full;
        }
        if full {
            self.flushed = now;
        }
        Ok(())
    }
}

/// The writer thread: takes every write waiting, applies them in one transaction, commits, then
/// answers each caller and wakes the workers concerned.
pub(super) fn write_loop(mut conn: Connection, mut queue: mpsc::Receiver<Write>, wakers: &Wakers) {
    let mut flush = Flush {
        flushed: Instant::now(),
        full: true,
    };
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut pending = Vec::with_capacity(batch.len());
        for write in batch {
            match write {
                // A checkpoint cannot run inside a transaction: what came before commits first.
                Write::Close { reply } => {
                    commit(&mut conn, &mut flush, std::mem::take(&mut pending), wakers);
                    let closed = super::schema::mark_open(&conn, false)
                        .map_err(|e| StoreError::Write(e.to_string()));
                    let _ = reply.send(closed);
                }
                write => pending.push(write),
            }
        }
        commit(&mut conn, &mut flush, pending, wakers);
    }
}

/// Applies `batch` in one transaction, then answers each caller and wakes the workers concerned.
fn commit(conn: &mut Connection, flush: &mut Flush, batch: Vec<Write>, wakers: &Wakers) {
    if batch.is_empty() {
        return;
    }
    let applied = flush
        .before(conn, &batch)
        .and_then(|()| apply(conn, &batch))
        .map_err(|e| StoreError::Write(e.to_string()));
    answer(batch, applied, wakers);
}

/// Applies a batch in one transaction; what each write did.
fn apply(conn: &mut Connection, batch: &[Write]) -> Result<Vec<Applied>, rusqlite::Error> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        results.push(match write {
            Write::Accept { event, .. } => Applied::Accepted(insert_event(&tx, event, now)?),
            Write::Finish {
                id,
                destination,
                finish,
                ..
            } => {
                record_finish(&tx, *id, destination, finish, now)?;
                Applied::Done
            }
            Write::Probe { .. } => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?1)")?
                    .execute(params![now.to_string()])?;
                Applied::Done
            }
            Write::Close { .. } => Applied::Done,
            Write::Prune { before, .. } => Applied::Pruned(prune(&tx, *before)?),
            Write::Unsilence { open_windows, .. } => {
                Applied::Queued(unsilence(&tx, open_windows, now)?)
            }
            Write::Flush { build, .. } => Applied::Queued(flush(&tx, *build, now)?),
            Write::Act { action, .. } => act(&tx, action, now)?,
        });
    }
    tx.commit()?;
    Ok(results)
}

/// Deletes up to [`PRUNE_BATCH`] deliveries finished before `before`, then up to as many events
/// received before it that have no delivery left, threads kept before it, groups and silences
/// that ended before it; the largest of the counts. Oldest rows come first in
/// both tables, so each statement stops after a short walk.
fn prune(tx: &rusqlite::Transaction, before: i64) -> Result<usize, rusqlite::Error> {
    let deliveries = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE state IN ('done', 'dead', 'flapped', 'grouped', 'silenced')
                   AND unsilence = 0 AND updated_at < ?1
                 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    let events = tx
        .prepare_cached(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE received_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event = events.id)
                 ORDER BY received_at LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    let threads = tx
        .prepare_cached(
            "DELETE FROM threads WHERE rowid IN (
                 SELECT rowid FROM threads WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    // Ended groups (their alerts go with them) and silences that ended before `before`.
    let groups = tx
        .prepare_cached(
            "DELETE FROM alert_groups WHERE id IN (
                 SELECT id FROM alert_groups WHERE ended_at < ?1 ORDER BY ended_at LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    let silences = tx
        .prepare_cached(
            "DELETE FROM silences WHERE id IN (
                 SELECT id FROM silences WHERE ends_at < ?1 ORDER BY ends_at LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    Ok([deliveries, events, threads, groups, silences]
        .into_iter()
        .max()
        .unwrap_or(0))
}

fn insert_event(
    tx: &rusqlite::Transaction,
    new: &NewEvent,
    now: i64,
) -> Result<Accepted, rusqlite::Error> {
    let (correlation, phase) = new.lifecycle();
    let (body, packed) = pack(&new.body, new.normalized.as_deref());
    // `OR IGNORE` does to a known key what `ON CONFLICT (event_id) DO NOTHING` would; it would
    // also skip a row breaking a NOT NULL or CHECK constraint, which these typed values cannot.
    // In exchange SQLite keeps no statement journal (a copy of every page the statement changes,
    // in case it fails midway) for each event: 9% of the writer's instructions (callgrind).
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, received_at, body, packed, correlation, phase)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![new.key, new.received_at, body, packed, correlation, phase],
            |row| row.get::<_, i64>(0),
        )
        .optional()?;
    let Some(event) = inserted else {
        return Ok(Accepted::Duplicate);
    };
    let mut flapped = false;
    for to in &new.to {
        let destination = to.destination.as_str();
        let trigger = match (correlation, phase) {
            (Some(correlation), Some("clear")) => trigger_there(tx, correlation, destination, now)?,
            _ => None,
        };
        let correlation = correlation.unwrap_or_default();
        let row = match disposition(new, to, trigger, now) {
            Disposition::Pending { due, held } => Row::pending(due, held, now),
            Disposition::Silenced {
                by,
                unsilence,
                trigger,
            } => {
                if let Some(trigger) = trigger {
                    tx.prepare_cached("UPDATE deliveries SET unsilence = 0 WHERE id = ?1")?
                        .execute(params![trigger])?;
                }
                Row::silenced(by, unsilence, now)
            }
            Disposition::Flapped { trigger } => {
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'flapped', updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![trigger, now])?;
                flapped = true;
                Row::flapped(now)
            }
            Disposition::Join(joining) => {
                Row::grouped(join_group(tx, destination, correlation, joining, now)?, now)
            }
            Disposition::Leave { group } => {
                leave_group(tx, group, correlation, now)?;
                Row::grouped(group, now)
            }
        };
        tx.prepare_cached(
            "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
                 updated_at, silenced_by, unsilence, held, grp)
             VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            event,
            destination,
            row.state,
            row.due,
            now,
            row.silenced_by,
            row.unsilence,
            row.held,
            row.group
        ])?;
    }
    Ok(Accepted::New {
        deliveries: new.to.len(),
        flapped,
    })
}

/// What became of the latest trigger of the alert `correlation` at `destination`, if there is one.
fn trigger_there(
    tx: &rusqlite::Transaction,
    correlation: &str,
    destination: &str,
    now: i64,
) -> Result<Option<Trigger>, rusqlite::Error> {
    tx.prepare_cached(
        "SELECT d.id, d.state, d.silenced_by, d.held, d.attempts, d.next_attempt_at, d.grp
         FROM deliveries d JOIN events e ON e.id = d.event
         WHERE e.correlation = ?1 AND e.phase = 'trigger' AND d.destination = ?2
           AND d.refresh = 0
         ORDER BY e.id DESC LIMIT 1",
    )?
    .query_row(params![correlation, destination], |row| {
        Ok(Trigger::read(
            row.get(0)?,
            &row.get::<_, String>(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            now,
        ))
    })
    .optional()
}

/// Puts the alert `correlation` into the open group of `joining` at `destination`, made now if
/// there is none (its first notification after the group's wait); a group already notified
/// sends the change at its next interval. The group's id.
fn join_group(
    tx: &rusqlite::Transaction,
    destination: &str,
    correlation: &str,
    joining: &Joining,
    now: i64,
) -> Result<i64, rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO alert_groups (destination, key, labels, started_at, interval_ms, flush_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4 + ?6)
         ON CONFLICT (destination, key) WHERE ended_at IS NULL DO NOTHING",
    )?
    .execute(params![
        destination,
        joining.key,
        joining.labels,
        now,
        joining.interval_ms,
        joining.wait_ms
    ])?;
    let group: i64 = tx
        .prepare_cached(
            "SELECT id FROM alert_groups WHERE destination = ?1 AND key = ?2 AND ended_at IS NULL",
        )?
        .query_row(params![destination, joining.key], |row| row.get(0))?;
    tx.prepare_cached(
        "UPDATE alert_groups SET flush_at = MAX(?2, COALESCE(flushed_at + interval_ms, ?2))
         WHERE id = ?1 AND flush_at IS NULL",
    )?
    .execute(params![group, now])?;
    tx.prepare_cached(
        "INSERT INTO alert_group_members (grp, correlation, firing, summary, joined_at, changed_at)
         VALUES (?1, ?2, 1, ?3, ?4, ?4)
         ON CONFLICT (grp, correlation) DO UPDATE
             SET firing = 1, summary = excluded.summary, changed_at = excluded.changed_at",
    )?
    .execute(params![group, correlation, joining.member, now])?;
    Ok(group)
}

/// Marks the alert `correlation` cleared in `group`: the group's notification goes at once when
/// no alert of it fires any more, else at its next interval.
fn leave_group(
    tx: &rusqlite::Transaction,
    group: i64,
    correlation: &str,
    now: i64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "UPDATE alert_group_members SET firing = 0, changed_at = ?3
         WHERE grp = ?1 AND correlation = ?2",
    )?
    .execute(params![group, correlation, now])?;
    tx.prepare_cached(
        "UPDATE alert_groups SET flush_at = CASE
             WHEN NOT EXISTS (SELECT 1 FROM alert_group_members WHERE grp = ?1 AND firing = 1)
                 THEN ?2
             ELSE COALESCE(flush_at, MAX(?2, COALESCE(flushed_at + interval_ms, ?2))) END
         WHERE id = ?1 AND ended_at IS NULL",
    )?
    .execute(params![group, now])?;
    Ok(())
}

/// See `Outbox::flush_groups`: the destination of each notification made.
fn flush(
    tx: &rusqlite::Transaction,
    build: BuildNotification,
    now: i64,
) -> Result<Vec<String>, rusqlite::Error> {
    let due: Vec<DueGroup> = tx
        .prepare_cached(
            "SELECT id, destination, key, labels, started_at, notifications FROM alert_groups
             WHERE flush_at <= ?1 AND ended_at IS NULL ORDER BY flush_at LIMIT ?2",
        )?
        .query_map(params![now, FLUSH_BATCH as i64], |row| {
            Ok(DueGroup {
                id: row.get(0)?,
                destination: row.get(1)?,
                key: row.get(2)?,
                labels: row.get(3)?,
                started_at: row.get(4)?,
                notifications: row.get(5)?,
                members: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut destinations = Vec::with_capacity(due.len());
    for mut group in due {
        group.members = tx
            .prepare_cached(
                "SELECT correlation, firing, summary, joined_at, changed_at, notified
                 FROM alert_group_members WHERE grp = ?1",
            )?
            .query_map(params![group.id], |row| {
                Ok(Member {
                    correlation: row.get(0)?,
                    firing: row.get(1)?,
                    summary: row.get(2)?,
                    joined_at: row.get(3)?,
                    changed_at: row.get(4)?,
                    notified: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let notification = build(&group, now);
        let number = group.notifications + 1;
        let (body, packed) = pack(&notification.body, Some(&notification.normalized));
        let event: i64 = tx
            .prepare_cached(
                "INSERT INTO events (event_id, received_at, body, packed, correlation, phase)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            )?
            .query_row(
                params![
                    format!("group:{}:{number}", group.id),
                    now,
                    body,
                    packed,
                    format!("group:{}", group.id),
                    if number == 1 { "trigger" } else { "clear" }
                ],
                |row| row.get(0),
            )?;
        tx.prepare_cached(
            "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
                 updated_at, grp)
             VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?4)",
        )?
        .execute(params![event, group.destination, now, group.id])?;
        tx.prepare_cached("UPDATE alert_group_members SET notified = firing WHERE grp = ?1")?
            .execute(params![group.id])?;
        tx.prepare_cached(
            "UPDATE alert_groups SET flush_at = NULL, flushed_at = ?2, notifications = ?3,
                 ended_at = CASE WHEN EXISTS (SELECT 1 FROM alert_group_members
                                              WHERE grp = ?1 AND firing = 1)
                                 THEN NULL ELSE ?2 END
             WHERE id = ?1",
        )?
        .execute(params![group.id, now, number])?;
        destinations.push(group.destination);
    }
    Ok(destinations)
}

/// See `Outbox::act`: the action kept once, with the silence it makes or ends, and a refresh of
/// the latest event of its alert sent (or being sent) to its destination, which waits for that.
fn act(
    tx: &rusqlite::Transaction,
    action: &NewAction,
    now: i64,
) -> Result<Applied, rusqlite::Error> {
    let row = &action.row;
    let kept = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_actions
                 (key, correlation, destination, action, user_id, user_name, at, silence,
                  until_cleared)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            action.key,
            row.correlation,
            row.destination,
            row.action,
            row.user_id,
            row.user_name,
            row.at,
            row.silence,
            row.until_cleared
        ])?;
    if kept == 0 {
        return Ok(Applied::Acted(false, Vec::new()));
    }
    if let Some(silence) = &action.add_silence {
        super::silences::insert(tx, silence)?;
    }
    if let Some(id) = &action.expire_silence {
        super::silences::expire(tx, id)?;
    }
    let latest: Option<i64> = tx
        .prepare_cached(
            "SELECT e.id FROM events e JOIN deliveries d ON d.event = e.id
             WHERE e.correlation = ?1 AND d.destination = ?2
               AND d.state IN ('done', 'pending')
             ORDER BY e.id DESC LIMIT 1",
        )?
        .query_row(params![row.correlation, row.destination], |r| r.get(0))
        .optional()?;
    let Some(event) = latest else {
        return Ok(Applied::Acted(true, Vec::new()));
    };
    tx.prepare_cached(
        "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
             updated_at, refresh)
         VALUES (?1, ?2, 'pending', 0, ?3, ?3, 1)",
    )?
    .execute(params![event, row.destination, now])?;
    Ok(Applied::Acted(true, vec![row.destination.clone()]))
}

/// A silence made from a message "until cleared" ends once its alert has cleared. Walks the
/// actions (a few, made by people) and looks up each alert's events by key: never the events
/// table, which this runs against every `storage.poll` (a join the planner once drove from
/// `events` read the whole table each time).
pub(super) const UNTIL_CLEARED: &str =
    "UPDATE silences SET ends_at = ?1 WHERE ends_at > ?1 AND id IN (
     SELECT a.silence FROM alert_actions a
     WHERE a.until_cleared = 1 AND EXISTS (
         SELECT 1 FROM events e
         WHERE e.correlation = a.correlation AND e.phase = 'clear' AND e.received_at >= a.at))";

/// See `Outbox::unsilence`: the triggers still firing that what silenced them no longer holds
/// (an ended silence of the store, a window not in `open_windows`) become due now; the
/// destination of each.
fn unsilence(
    tx: &rusqlite::Transaction,
    open_windows: &[String],
    now: i64,
) -> Result<Vec<String>, rusqlite::Error> {
    tx.prepare_cached(UNTIL_CLEARED)?.execute(params![now])?;
    let open = serde_json::to_string(open_windows).unwrap_or_else(|_| "[]".into());
    let mut statement = tx.prepare_cached(
        "UPDATE deliveries SET state = 'pending', unsilence = 0, next_attempt_at = ?1,
             updated_at = ?1
         WHERE unsilence = 1 AND state = 'silenced'
           AND silenced_by NOT IN (SELECT value FROM json_each(?2))
           AND NOT EXISTS (SELECT 1 FROM silences s
                           WHERE deliveries.silenced_by = 'silence:' || s.id AND s.ends_at > ?1)
         RETURNING destination",
    )?;
    let rows = statement.query_map(params![now, open], |row| row.get(0))?;
    rows.collect()
}

fn record_finish(
    tx: &rusqlite::Transaction,
    id: i64,
    destination: &str,
    finish: &Finish,
    now: i64,
) -> Result<(), rusqlite::Error> {
    if let Finish::Done {
        thread: Some(thread),
        ..
    } = finish
    {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO threads
                 (destination, correlation, thread, trigger_summary, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            destination,
            thread.correlation,
            thread.thread,
            thread.trigger_summary,
            now
        ])?;
    }
    let (state, attempts, due, error) = finish.row(now);
    tx.prepare_cached(
        "UPDATE deliveries SET state = ?1, attempts = ?2, next_attempt_at = ?3,
         last_error = COALESCE(?4, last_error), updated_at = ?5 WHERE id = ?6",
    )?
    .execute(params![state, attempts, due, error, now, id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn finish() -> Write {
        Write::Finish {
            id: 1,
            destination: "a".into(),
            finish: Finish::Done {
                attempts: 1,
                thread: None,
            },
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn outcomes_alone_wait_at_most_a_tenth_of_a_second_for_the_disk() {
        let flushed = Instant::now();
        let flush = Flush {
            flushed,
            full: true,
        };
        let accept = Write::Accept {
            event: NewEvent::for_test("\"e\"", &["a"]),
            reply: oneshot::channel().0,
        };
        assert!(!flush.flushes(&[finish(), finish()], flushed));
        assert!(
            !flush.flushes(&[finish()], flushed + OUTCOMES_UNSYNCED_FOR / 2),
            "flushed recently"
        );
        assert!(
            flush.flushes(&[finish()], flushed + OUTCOMES_UNSYNCED_FOR),
            "the last flush is too old"
        );
        assert!(
            flush.flushes(&[finish(), accept], flushed),
            "an accepted event is on disk before its sender hears so"
        );
        assert!(flush.flushes(
            &[Write::Probe {
                reply: oneshot::channel().0
            }],
            flushed
        ));
    }

    #[test]
    fn the_connection_flushes_as_the_batch_asks() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::connect(&dir.path().join("s.db"), true).unwrap();
        let synchronous = || -> i64 {
            conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(), 2, "FULL from the start");
        let earlier = Instant::now() - Duration::from_millis(1);
        let mut flush = Flush {
            flushed: earlier,
            full: true,
        };
        flush.before(&conn, &[finish()]).unwrap();
        assert_eq!(synchronous(), 1, "NORMAL for outcomes alone");
        assert_eq!(flush.flushed, earlier, "no flush to note");
        let accept = Write::Accept {
            event: NewEvent::for_test("\"e\"", &["a"]),
            reply: oneshot::channel().0,
        };
        flush.before(&conn, &[finish(), accept]).unwrap();
        assert_eq!(synchronous(), 2, "FULL again for an accept");
        assert!(flush.flushed > earlier, "the flush is noted");
    }
}
