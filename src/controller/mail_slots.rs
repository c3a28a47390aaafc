//! How many Partner reconciliations may send email at once.
//!
//! A reconciliation that sends email holds its slot for the SMTP round trips and the status
//! write that records the delivery, about ten times as long as a conversion at a deadline
//! takes. When a thousand trials end at once, each conversion is followed by its emails; if
//! those took every reconciliation slot, the conversions still due would wait behind them.
//! So only part of the slots may send email at the same time: a reconciliation with an email
//! to send that finds none free records nothing, steps aside and is woken, first come first
//! served, when a slot frees. The email's intent is already in `status.emails`, so stepping
//! aside loses nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::Partner;

pub struct MailSlots {
    permits: Arc<Semaphore>,
    waiting: Mutex<Waiting>,
    /// Triggers a reconciliation of the Partner next in line.
    wake: UnboundedSender<ObjectRef<Partner>>,
}

/// Partners waiting for a slot, in the order they asked.
#[derive(Default)]
struct Waiting {
    queue: VecDeque<ObjectRef<Partner>>,
    members: HashSet<ObjectRef<Partner>>,
}

/// A slot to send email in; the next Partner in line is woken when it is dropped.
pub struct MailSlot {
    slots: Arc<MailSlots>,
    _permit: OwnedSemaphorePermit,
}

impl MailSlots {
    /// `count` slots (at least one).
    pub fn new(count: usize, wake: UnboundedSender<ObjectRef<Partner>>) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(count.max(1))),
            waiting: Mutex::default(),
            wake,
        })
    }

    /// A free slot for `partner`, or `None` with the Partner put in line to be woken.
    pub fn try_take(self: &Arc<Self>, partner: &ObjectRef<Partner>) -> Option<MailSlot> {
        let mut waiting = self.waiting.lock().unwrap();
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                // Its place in the queue, if it had one, is skipped when reached.
                waiting.members.remove(partner);
                Some(MailSlot {
                    slots: self.clone(),
                    _permit: permit,
                })
            }
            Err(_) => {
                if waiting.members.insert(partner.clone()) {
                    waiting.queue.push_back(partner.clone());
                }
                None
            }
        }
    }

    /// How many Partners wait for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().unwrap().members.len()
    }

    fn wake_next(&self) {
        let mut waiting = self.waiting.lock().unwrap();
        while let Some(next) = waiting.queue.pop_front() {
            if waiting.members.remove(&next) {
                let _ = self.wake.send(next);
                return;
            }
        }
    }
}

impl Drop for MailSlot {
    fn drop(&mut self) {
        self.slots.wake_next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str) -> ObjectRef<Partner> {
        ObjectRef::new(name).within("partners")
    }

    #[test]
    fn waiters_are_woken_in_the_order_they_asked() {
        let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel();
        let slots = MailSlots::new(1, wake);
        let first = slots.try_take(&partner("a")).expect("a free slot");
        assert!(slots.try_take(&partner("b")).is_none());
        assert!(slots.try_take(&partner("c")).is_none());
        // Asking again keeps the place in line.
        assert!(slots.try_take(&partner("b")).is_none());
        assert_eq!(slots.waiting(), 2);
        drop(first);
        assert_eq!(woken.try_recv().unwrap(), partner("b"));
        assert!(
            woken.try_recv().is_err(),
            "one slot freed, one Partner woken"
        );
        // b takes the slot; c is next once b is done.
        let second = slots.try_take(&partner("b")).expect("the freed slot");
        drop(second);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        assert_eq!(slots.waiting(), 0);
    }

    #[test]
    fn a_waiter_that_got_a_slot_otherwise_is_not_woken() {
        let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel();
        let slots = MailSlots::new(2, wake);
        let a = slots.try_take(&partner("a")).unwrap();
        let b = slots.try_take(&partner("b")).unwrap();
        assert!(slots.try_take(&partner("c")).is_none());
        assert!(slots.try_take(&partner("d")).is_none());
        drop(a);
        assert_eq!(woken.try_recv().unwrap(), partner("c"));
        // d found the freed slot first (another event reconciled it): it leaves the line.
        let d = slots.try_take(&partner("d")).unwrap();
        drop(b);
        drop(d);
        assert!(woken.try_recv().is_err(), "nobody is left waiting");
        assert!(slots.try_take(&partner("c")).is_some());
    }
}
