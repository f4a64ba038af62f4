//! Admission of a control request: the pure checks of [`crate::authz`] (signature, time window,
//! role), then the one step that needs the bus — the nonce's first use, shared by every coordinator
//! process through the server's duplicate window (`bus::nonces`).
//!
//! Refuses, beyond what `authz` refuses: a nonce seen before (`replayed`), and — rather than
//! answer a request it cannot check — any request while the nonce store is unreachable
//! (`unavailable`).

use crate::authz::{Actor, Operators};
use bus::Bus;
use proto::decode::{Code, Refusal};
use proto::identity::Role;
use time::OffsetDateTime;

/// The verified actor of `message`, if it may ask for `needed` and was not seen before.
pub async fn admit(
    bus: &Bus,
    operators: &Operators,
    message: &async_nats::Message,
    needed: Role,
) -> Result<Actor, Refusal> {
    let checked = operators.check(message, needed, OffsetDateTime::now_utc())?;
    match bus::nonces::first_use(bus, &checked.key, &checked.nonce).await {
        Ok(true) => Ok(checked.actor),
        Ok(false) => Err(Refusal::new(
            Code::Replayed,
            format!("a request with nonce {} was accepted already; each request is answered once", checked.nonce),
        )),
        Err(err) => Err(Refusal::new(
            Code::Unavailable,
            format!("the coordinator cannot check the request's nonce now ({}); send it again", bus::chain(&err)),
        )),
    }
}
