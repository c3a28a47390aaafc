//! Recording the result of an effect in the Partner's status: what it changes and which Event
//! tells it are the lifecycle's decision ([`lifecycle::record_outcome`]); here it is written,
//! with retries, because an outcome that is lost would be acted on again (an email sent twice).

use kube::Api;

use super::Context;
use crate::api::Partner;
use crate::lifecycle::{self, Outcome, PartnerEvent};
use crate::status::{self, Persistence, Writer};

/// Records `outcome` on `current` (left as written) and tells its Event; the Event, if any.
pub(super) async fn record_outcome(
    ctx: &Context,
    api: &Api<Partner>,
    current: &mut Partner,
    outcome: Outcome<'_>,
) -> kube::Result<Option<PartnerEvent>> {
    let event = status::transact(
        api,
        current,
        Writer::Operator,
        Persistence::Outcome,
        |_, status| lifecycle::record_outcome(status, &outcome),
    )
    .await?
    .value;
    if let Some(event) = &event {
        ctx.publish(current, event).await;
    }
    Ok(event)
}
