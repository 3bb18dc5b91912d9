//! messaging-echo for wasmCloud's interfaces.
//!
//! The same echo as `messaging-echo`, written against
//! `wasmcloud:messaging@0.2.0` the way wasmCloud's own examples are, to
//! show such components run on Trellis unchanged: link messaging-nats to
//! it with namespace `wasmcloud` instead of `trellis`.
//!
//! ```text
//! $ wash link put echo messaging-nats wasmcloud messaging --interface consumer
//! $ wash link put messaging-nats echo wasmcloud messaging --interface handler --source-config subs
//! $ nats request wasmcloud.echo 'hello'
//! hello
//! ```

mod bindings {
    //! Rust bindings for the `trellis:examples/wasmcloud-echo` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/wasmcloud-echo",
        generate_all,
    });
}

use bindings::exports::wasmcloud::messaging::handler::Guest;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;

/// The component: stateless, one call per message.
struct WasmcloudEcho;

impl Guest for WasmcloudEcho {
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

bindings::export!(WasmcloudEcho with_types_in bindings);
