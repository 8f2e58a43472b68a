//! One routing condition through every phase: `text ──parse──▶ Ast ──check──▶ Ir ──compile──▶
//! Program`, kept together so a caller compiles once and evaluates many times.

use crate::check::{self, Checked, Options};
use crate::compile::{self, Program};
use crate::diagnostic::{CompileError, Diagnostic};
use crate::eval::{interp, ops, Bool3, EvalContext};
use crate::message::Message;
use crate::syntax::{self, Ast, Limits};

/// A compiled routing condition.
///
/// ```
/// use hubroute::{Condition, Options, message::Message, Bool3};
/// let cond = Condition::compile("$contentType = 'application/json' AND $body.temp > 50", &Options::default()).unwrap();
/// let msg = Message::from_json_str(r#"{"systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8"}, "body": "{\"temp\": 61}"}"#).unwrap();
/// assert_eq!(cond.eval(&msg), Bool3::True);
/// ```
#[derive(Clone, Debug)]
pub struct Condition {
    source: String,
    ast: Ast,
    checked: Checked,
    program: Program,
}

impl Condition {
    /// Compiles a condition with the default [`Limits`].
    pub fn compile(source: &str, options: &Options) -> Result<Condition, CompileError> {
        Self::compile_with_limits(source, options, &Limits::default())
    }

    /// Compiles a condition.
    pub fn compile_with_limits(
        source: &str,
        options: &Options,
        limits: &Limits,
    ) -> Result<Condition, CompileError> {
        let ast = syntax::parse_with_limits(source, limits)?;
        let checked = check::check(&ast, source, options)?;
        let program = compile::compile(&checked.ir, checked.ty);
        Ok(Condition {
            source: source.to_string(),
            ast,
            checked,
            program,
        })
    }

    /// Whether the condition is true for the message (only `True` routes it).
    pub fn eval(&self, message: &Message) -> Bool3 {
        self.program.eval(&EvalContext::new(message))
    }

    /// Evaluates with a caller-provided context (to share a parsed body between conditions,
    /// or to supply a twin).
    pub fn eval_in(&self, ctx: &EvalContext<'_>) -> Bool3 {
        self.program.eval(ctx)
    }

    /// The reference interpreter's answer (for differential tests and explain).
    pub fn eval_reference(&self, ctx: &EvalContext<'_>) -> Bool3 {
        ops::to_route(self.checked.ty, &interp::eval(&self.checked.ir, ctx))
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// The checked IR and its type.
    pub fn checked(&self) -> &Checked {
        &self.checked
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The compiled program, for a route table's passes over all its programs
    /// ([`crate::compile::share`]).
    pub(crate) fn program_mut(&mut self) -> &mut Program {
        &mut self.program
    }

    /// Lints found while compiling.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.checked.warnings
    }

    /// The reference engine's route complexity: parse-tree leaves (R25).
    pub fn complexity(&self) -> usize {
        self.ast.complexity
    }
}
