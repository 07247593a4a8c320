//! What becomes of a new event's delivery to one destination: sent at once, held, silenced,
//! flapped, or grouped. The rules are here, once; each store reads what it knows of the alert's
//! trigger at that destination ([`Trigger`]) and carries out the answer in its own SQL.

use super::{Addressed, DeliveryState, Joining, NewEvent};

/// What a destination's store knows of the trigger of a clear.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Trigger {
    /// A silence or window held it (`by`); the delivery's id.
    Silenced { delivery: i64, by: Option<String> },
    /// Held by its route's `hold`, not sent yet and not due yet.
    Held { delivery: i64 },
    /// It joined the group `group`.
    Grouped { group: i64 },
    /// Sent, or on its way.
    Sent,
}

impl Trigger {
    /// The trigger's delivery as its store read it: its id, state, silencer, whether it is held,
    /// its attempts, when it is due and its group.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read(
        delivery: i64,
        state: &str,
        by: Option<String>,
        held: bool,
        attempts: i64,
        due: i64,
        group: Option<i64>,
        now: i64,
    ) -> Trigger {
        match (state, group) {
            ("silenced", _) => Trigger::Silenced { delivery, by },
            ("pending", _) if held && attempts == 0 && due > now => Trigger::Held { delivery },
            ("grouped", Some(group)) => Trigger::Grouped { group },
            _ => Trigger::Sent,
        }
    }
}

/// What to do with one delivery of a new event.
#[derive(Debug, PartialEq)]
pub(super) enum Disposition<'a> {
    /// Due at `due`; `held` for a trigger its route holds (it flaps if cleared before).
    Pending { due: i64, held: bool },
    /// Kept and not sent. `unsilence`: a trigger sent when `by` ends, unless it clears first.
    /// `trigger`: the silenced trigger of this clear, which no longer goes out when `by` ends.
    Silenced {
        by: String,
        unsilence: bool,
        trigger: Option<i64>,
    },
    /// This clear and its held trigger are neither sent.
    Flapped { trigger: i64 },
    /// A trigger joins its group (made if none is open).
    Join(&'a Joining),
    /// A clear marks its alert cleared in the group its trigger joined.
    Leave { group: i64 },
}

/// See [`Disposition`]: a clear follows its trigger there (silenced with it, flapped with it,
/// in its group, or sent as it was); anything else goes as its silence, group and hold say.
pub(super) fn disposition<'a>(
    new: &'a NewEvent,
    to: &'a Addressed,
    trigger: Option<Trigger>,
    now: i64,
) -> Disposition<'a> {
    let phase = new.lifecycle().1;
    let silenced = |unsilence| {
        new.silenced.as_ref().map(|by| Disposition::Silenced {
            by: by.clone(),
            unsilence,
            trigger: None,
        })
    };
    let at_once = Disposition::Pending {
        due: now,
        held: false,
    };
    if phase == Some("clear") {
        return match trigger {
            Some(Trigger::Silenced { delivery, by }) => Disposition::Silenced {
                by: by.or_else(|| new.silenced.clone()).unwrap_or_default(),
                unsilence: false,
                trigger: Some(delivery),
            },
            Some(Trigger::Held { delivery }) => Disposition::Flapped { trigger: delivery },
            Some(Trigger::Grouped { group }) => Disposition::Leave { group },
            Some(Trigger::Sent) => at_once,
            None => silenced(false).unwrap_or(at_once),
        };
    }
    if let Some(silenced) = silenced(phase == Some("trigger")) {
        return silenced;
    }
    match (&to.group, phase) {
        (Some(joining), Some("trigger")) => Disposition::Join(joining),
        (None, Some("trigger")) if to.hold_ms > 0 => Disposition::Pending {
            due: now + to.hold_ms,
            held: true,
        },
        _ => at_once,
    }
}

/// A new delivery's row, as its disposition makes it.
pub(super) struct Row {
    pub state: DeliveryState,
    pub due: i64,
    pub silenced_by: Option<String>,
    pub unsilence: bool,
    pub held: bool,
    pub group: Option<i64>,
}

impl Row {
    fn new(state: DeliveryState, now: i64) -> Self {
        Self {
            state,
            due: now,
            silenced_by: None,
            unsilence: false,
            held: false,
            group: None,
        }
    }

    /// To be sent at `due` (later than `now` while `held`).
    pub fn pending(due: i64, held: bool, now: i64) -> Self {
        Self {
            due,
            held,
            ..Self::new(DeliveryState::Pending, now)
        }
    }

    /// Held `by` a silence or window; sent when it ends if `unsilence`.
    pub fn silenced(by: String, unsilence: bool, now: i64) -> Self {
        Self {
            silenced_by: Some(by),
            unsilence,
            ..Self::new(DeliveryState::Silenced, now)
        }
    }

    pub fn flapped(now: i64) -> Self {
        Self::new(DeliveryState::Flapped, now)
    }

    /// Gone into the group `group`, whose notifications name it.
    pub fn grouped(group: i64, now: i64) -> Self {
        Self {
            group: Some(group),
            ..Self::new(DeliveryState::Grouped, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Phase;

    fn new(phase: Phase, silenced: Option<&str>) -> NewEvent {
        NewEvent {
            lifecycle: Some(("a1".into(), phase)),
            silenced: silenced.map(str::to_owned),
            ..NewEvent::for_test("e", &[])
        }
    }

    fn to(hold_ms: i64, group: bool) -> Addressed {
        Addressed {
            destination: "d".into(),
            hold_ms,
            group: group.then(|| Joining {
                key: "test=a".into(),
                labels: "{}".into(),
                wait_ms: 1,
                interval_ms: 1,
                member: "{}".into(),
            }),
        }
    }

    #[test]
    fn a_clear_follows_its_trigger() {
        let clear = new(Phase::Clear, Some("silence:s"));
        let plain = to(0, false);
        let silenced = Trigger::Silenced {
            delivery: 7,
            by: Some("silence:t".into()),
        };
        assert_eq!(
            disposition(&clear, &plain, Some(silenced), 5),
            Disposition::Silenced {
                by: "silence:t".into(),
                unsilence: false,
                trigger: Some(7)
            }
        );
        assert_eq!(
            disposition(&clear, &plain, Some(Trigger::Sent), 5),
            Disposition::Pending {
                due: 5,
                held: false
            },
            "sent, though a silence matches it"
        );
        assert_eq!(
            disposition(&clear, &plain, Some(Trigger::Held { delivery: 3 }), 5),
            Disposition::Flapped { trigger: 3 }
        );
        assert_eq!(
            disposition(&clear, &plain, Some(Trigger::Grouped { group: 9 }), 5),
            Disposition::Leave { group: 9 }
        );
        assert!(matches!(
            disposition(&clear, &plain, None, 5),
            Disposition::Silenced {
                unsilence: false,
                ..
            }
        ));
    }

    #[test]
    fn a_trigger_goes_as_its_silence_group_and_hold_say() {
        let trigger = new(Phase::Trigger, None);
        assert_eq!(
            disposition(&trigger, &to(1000, false), None, 5),
            Disposition::Pending {
                due: 1005,
                held: true
            }
        );
        assert!(matches!(
            disposition(&trigger, &to(0, true), None, 5),
            Disposition::Join(_)
        ));
        let silenced = new(Phase::Trigger, Some("maintenance:w"));
        assert_eq!(
            disposition(&silenced, &to(1000, true), None, 5),
            Disposition::Silenced {
                by: "maintenance:w".into(),
                unsilence: true,
                trigger: None
            },
            "a silence comes before the group and the hold"
        );
        let test = NewEvent::for_test("e", &[]);
        assert_eq!(
            disposition(&test, &to(1000, true), None, 5),
            Disposition::Pending {
                due: 5,
                held: false
            },
            "an event outside any alert's life is sent at once"
        );
    }

    #[test]
    fn the_trigger_is_read_from_its_delivery() {
        assert_eq!(
            Trigger::read(1, "pending", None, true, 0, 10, None, 5),
            Trigger::Held { delivery: 1 }
        );
        assert_eq!(
            Trigger::read(1, "pending", None, true, 0, 5, None, 5),
            Trigger::Sent,
            "its hold is over"
        );
        assert_eq!(
            Trigger::read(1, "pending", None, true, 1, 10, None, 5),
            Trigger::Sent,
            "an attempt was made"
        );
        assert_eq!(
            Trigger::read(1, "grouped", None, false, 0, 5, Some(4), 5),
            Trigger::Grouped { group: 4 }
        );
        assert_eq!(
            Trigger::read(1, "done", None, false, 1, 5, None, 5),
            Trigger::Sent
        );
    }
}
