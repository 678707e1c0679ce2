//! Harness for the CalDAV/CardDAV integration tests: a pinned Python venv with real servers
//! and vdir clients, Radicale and Xandikos on free loopback ports, a tiny blocking HTTP client
//! that plays "another client editing the server", `FaultProxy`, a recording reverse proxy
//! that injects faults, and `FeedServer`, a calendar feed server for the webcal tests.
//!
//! Include with `mod dav_support;`. Every test binary uses a different subset.
//!
//! ```ignore
//! let server = Radicale::start();               // installs the venv on first use
//! let proxy = FaultProxy::start(&server.url());
//! let client = server.client();                 // Basic auth as alice
//! client.mkcalendar(&proxy.proxied(&format!("{}cal/", server.calendar_home_url())));
//! proxy.set_faults(vec![FaultRule::once(Fault::unavailable(1)).method("PUT")]);
//! ```
#![allow(dead_code, unused_imports)]

pub mod feed;
pub mod google;
pub mod http;
pub mod oauth;
pub mod proxy;
pub mod servers;
pub mod venv;
pub mod xml;

pub use http::{DavClient, HttpResponse, basic_auth, http, try_http};
pub use proxy::{Fault, FaultProxy, FaultRule, Recorded, drop_responses};
pub use proxy::{Gauge, Hold, Release};
pub use servers::{DavServer, Radicale, Xandikos, free_port};
pub use venv::{REQUIREMENTS, tool_output, venv, venv_bin};
pub use xml::{elements, xml_text};
