//! {{name}}: answers every message that asks for a reply with its body.
//!
//! `wash dev` builds, signs and runs it with the messaging-nats provider,
//! subscribed to `{{name}}.>`. Try `nats req {{name}}.hi 'hello'`.

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({ world: "component", generate_all });
}

use bindings::exports::wasmcloud::messaging::handler::Guest;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;

struct Component;

impl Guest for Component {
    fn handle_message(message: BrokerMessage) -> Result<(), String> {
        let Some(reply_to) = message.reply_to else {
            return Ok(());
        };
        let reply = BrokerMessage {
            subject: reply_to,
            body: message.body,
            reply_to: None,
        };
        consumer::publish(&reply).map_err(|e| format!("replying on `{}`: {e}", reply.subject))
    }
}

bindings::export!(Component with_types_in bindings);
