//! Blanket's core: the task model, the SQLite store, the event hub and the coordinator.
//! Every front end (REST, HTML pages, CLI, desktop shell) goes through `Coordinator`.
//! Nothing in this crate knows HTTP, IPC or a command line exists.

pub mod config;
pub mod coordinator;
pub mod error;
pub mod filter;
pub mod hub;
pub mod id;
pub mod local_workers;
pub mod notify_policy;
pub mod notify_settings;
pub mod state;
pub mod store;
mod task_files;
pub mod task_type;
pub mod template;
pub mod upload;
pub mod wire;

pub use coordinator::Coordinator;
pub use error::{Error, Result};
pub use hub::Hub;
pub use id::{TaskId, WorkerId};
pub use state::TaskState;
