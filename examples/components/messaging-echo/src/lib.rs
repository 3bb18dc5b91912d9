//! An echo service on the message broker.
//!
//! The component exports `trellis:messaging/handler`. For every message that
//! carries a `reply-to` subject it publishes the same body back to that
//! subject through `trellis:messaging/consumer`; messages without one are
//! accepted and dropped. With the messaging-nats provider subscribed to
//! `trellis.echo`:
//!
//! ```text
//! $ nats request trellis.echo 'hello'
//! hello
//! ```

mod bindings {
    //! Rust bindings for the `trellis:examples/messaging-echo` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/messaging-echo",
        generate_all,
    });
}

use bindings::exports::trellis::messaging::handler::Guest;
use bindings::trellis::messaging::consumer;
use bindings::trellis::messaging::types::BrokerMessage;

/// The component: stateless, one call per message.
struct MessagingEcho;

impl Guest for MessagingEcho {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let Some(reply_to) = msg.reply_to else {
            return Ok(());
        };
        let reply = BrokerMessage {
            subject: reply_to,
            body: msg.body,
            reply_to: None,
        };
        consumer::publish(&reply)
            .map_err(|error| format!("cannot reply on `{}`: {error}", reply.subject))
    }
}

bindings::export!(MessagingEcho with_types_in bindings);
