//! Evaluation: runtime values, operator semantics, the per-message context, and the reference
//! interpreter over the checked IR.

pub mod context;
pub mod dynamic;
mod fast;
pub mod interp;
pub mod ops;

pub use crate::value::{dotnet_double_cmp, Bool3, Value};
pub use context::{BodyJson, BodyProblem, EvalContext, TwinLookup};
pub(crate) use fast::Planned;
pub use fast::{BodyPlan, BodyScratch};
