//! How many Partner reconciliations may send email at once: as many as the mailer may open SMTP
//! connections (`max_connections`), so a server that hangs or answers slowly holds at most
//! that many reconciliations, and the rest provision, convert and delete meanwhile.
//!
//! A reconciliation that sends email holds its slot for the SMTP round trips and the status
//! write that records the delivery, about ten times as long as a conversion at a deadline
//! takes. When a thousand trials end at once, each conversion is followed by its emails; if
//! those came first, the conversions still due would wait behind them (kube's scheduler hands
//! out due work in no particular order). So while deadline work is due (see
//! [`super::deadlines`]), only part of the slots may send email; otherwise all may.
//!
//! A reconciliation with an email to send that finds no slot free records nothing, steps aside,
//! and is woken, first come first served, when a slot frees. The email's intent is already in
//! `status.emails`, so stepping aside loses nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc::UnboundedSender;

use crate::api::Partner;

pub struct MailSlots {
    /// Slots when no deadline is due.
    all: usize,
    /// Slots while deadline work is due.
    while_deadlines_due: usize,
    state: Mutex<State>,
    /// Triggers a reconciliation of the Partner next in line.
    wake: UnboundedSender<ObjectRef<Partner>>,
    /// `partner_operator_emails_waiting`: how many are in `State::waiting`.
    waiting_gauge: Gauge,
}

#[derive(Default)]
struct State {
    in_use: usize,
    /// The limit the last request saw: how many a freed slot may wake.
    limit: usize,
    /// Partners waiting for a slot, in the order they asked.
    queue: VecDeque<ObjectRef<Partner>>,
    waiting: HashSet<ObjectRef<Partner>>,
    /// Woken and not yet back: if another reconciliation took the freed slot meanwhile, the
    /// Partner goes back to the front of the line, not the end.
    woken: HashSet<ObjectRef<Partner>>,
}

/// A slot to send email in; the next Partner in line is woken when it is dropped.
pub struct MailSlot {
    slots: Arc<MailSlots>,
}

impl MailSlots {
    /// `all` slots, `while_deadlines_due` of them while deadline work is due (at least one
    /// each); how many wait is kept in `waiting_gauge`.
    pub fn new(
        all: usize,
        while_deadlines_due: usize,
        wake: UnboundedSender<ObjectRef<Partner>>,
        waiting_gauge: Gauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            all: all.max(1),
            while_deadlines_due: while_deadlines_due.clamp(1, all.max(1)),
            state: Mutex::default(),
            wake,
            waiting_gauge,
        })
    }

    /// A free slot for `partner`, or `None` with the Partner put in line to be woken.
    pub fn try_take(
        self: &Arc<Self>,
        partner: &ObjectRef<Partner>,
        deadlines_due: bool,
    ) -> Option<MailSlot> {
        let mut state = self.state.lock().unwrap();
        state.limit = if deadlines_due {
            self.while_deadlines_due
        } else {
            self.all
        };
        let was_woken = state.woken.remove(partner);
        if state.in_use < state.limit {
            state.in_use += 1;
            // Its place in the line, if it had one, is skipped when reached.
            state.waiting.remove(partner);
            self.waiting_gauge.set(state.waiting.len() as i64);
            return Some(MailSlot {
                slots: self.clone(),
            });
        }
        if state.waiting.insert(partner.clone()) {
            if was_woken {
                state.queue.push_front(partner.clone());
            } else {
                state.queue.push_back(partner.clone());
            }
        }
        self.waiting_gauge.set(state.waiting.len() as i64);
        None
    }

    /// `partner` no longer needs a slot (its emails went out, or it is gone): it leaves the
    /// line, so `partner_operator_emails_waiting` does not count it.
    pub fn forget(&self, partner: &ObjectRef<Partner>) {
        let mut state = self.state.lock().unwrap();
        state.woken.remove(partner);
        state.waiting.remove(partner);
        self.waiting_gauge.set(state.waiting.len() as i64);
    }

    /// Frees a slot and wakes as many waiting Partners as there are free slots.
    fn release(&self) {
        let mut state = self.state.lock().unwrap();
        state.in_use -= 1;
        let mut free = state.limit.saturating_sub(state.in_use);
        while free > 0
            && let Some(next) = state.queue.pop_front()
        {
            if state.waiting.remove(&next) {
                state.woken.insert(next.clone());
                let _ = self.wake.send(next);
                free -= 1;
            }
        }
        self.waiting_gauge.set(state.waiting.len() as i64);
    }
}

impl Drop for MailSlot {
    fn drop(&mut self) {
        self.slots.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::UnboundedReceiver;

    fn partner(name: &str) -> ObjectRef<Partner> {
        ObjectRef::new(name).within("partners")
    }

    /// Slots, the Partners they wake, and the waiting gauge.
    fn slots(
        all: usize,
        while_deadlines_due: usize,
    ) -> (Arc<MailSlots>, UnboundedReceiver<ObjectRef<Partner>>, Gauge) {
        let (wake, woken) = tokio::sync::mpsc::unbounded_channel();
        let gauge = Gauge::default();
        let slots = MailSlots::new(all, while_deadlines_due, wake, gauge.clone());
        (slots, woken, gauge)
    }

    #[test]
    fn waiters_are_woken_in_the_order_they_asked() {
        let (slots, mut woken, gauge) = slots(1, 1);
        let first = slots.try_take(&partner("a"), false).expect("a free slot");
        assert!(slots.try_take(&partner("b"), false).is_none());
        assert!(slots.try_take(&partner("c"), false).is_none());
        // Asking again keeps the place in line.
        assert!(slots.try_take(&partner("b"), false).is_none());
        assert_eq!(gauge.get(), 2);
        drop(first);
        assert_eq!(woken.try_recv().unwrap(), partner("b"));
        assert!(
            woken.try_recv().is_err(),
            "one slot freed, one Partner woken"
        );
        // b takes the slot; c is next once b is done.
        let second = slots
            .try_take(&partner("b"), false)
            .expect("the freed slot");
        drop(second);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn a_waiter_that_got_a_slot_otherwise_is_not_woken() {
        let (slots, mut woken, gauge) = slots(2, 2);
        let a = slots.try_take(&partner("a"), false).unwrap();
        let b = slots.try_take(&partner("b"), false).unwrap();
        assert!(slots.try_take(&partner("c"), false).is_none());
        assert!(slots.try_take(&partner("d"), false).is_none());
        drop(a);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        // d found the freed slot first (another event reconciled it): it leaves the line.
        let d = slots.try_take(&partner("d"), false).unwrap();
        assert_eq!(
            gauge.get(),
            0,
            "c was woken and d took a slot: nobody waits"
        );
        drop(b);
        drop(d);
        assert!(woken.try_recv().is_err(), "nobody is left waiting");
        assert!(slots.try_take(&partner("c"), false).is_some());
    }

    #[test]
    fn while_deadlines_are_due_fewer_may_send() {
        let (slots, mut woken, _) = slots(3, 1);
        let a = slots.try_take(&partner("a"), false).unwrap();
        let b = slots.try_take(&partner("b"), false).unwrap();
        // A deadline is due: two slots are taken, one is the limit.
        assert!(slots.try_take(&partner("c"), true).is_none());
        assert!(slots.try_take(&partner("d"), true).is_none());
        drop(a);
        assert!(woken.try_recv().is_err(), "still one over the limit");
        drop(b);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        assert!(woken.try_recv().is_err());
        // The deadline work is done: c takes a slot and the limit is all three again, so
        // freeing c's slot wakes d and leaves room to spare.
        let c = slots.try_take(&partner("c"), false).unwrap();
        drop(c);
        assert_eq!(woken.try_recv().unwrap(), partner("d"));
    }

    #[test]
    fn a_woken_partner_that_lost_its_slot_keeps_the_front_of_the_line() {
        let (slots, mut woken, _) = slots(1, 1);
        let a = slots.try_take(&partner("a"), false).unwrap();
        assert!(slots.try_take(&partner("b"), false).is_none());
        assert!(slots.try_take(&partner("c"), false).is_none());
        drop(a);
        assert_eq!(woken.try_recv().unwrap(), partner("b"));
        // Before b is back, a newcomer takes the freed slot.
        let d = slots.try_take(&partner("d"), false).unwrap();
        assert!(slots.try_take(&partner("b"), false).is_none());
        drop(d);
        assert_eq!(
            woken.try_recv().unwrap(),
            partner("b"),
            "b is still ahead of c"
        );
    }

    #[test]
    fn a_partner_that_no_longer_needs_a_slot_leaves_the_line() {
        let (slots, mut woken, gauge) = slots(1, 1);
        let a = slots.try_take(&partner("a"), false).unwrap();
        assert!(slots.try_take(&partner("b"), false).is_none());
        assert!(slots.try_take(&partner("c"), false).is_none());
        slots.forget(&partner("b"));
        assert_eq!(gauge.get(), 1);
        drop(a);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        assert_eq!(gauge.get(), 0);
    }
}
