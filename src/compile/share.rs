//! Sharing of repeated tests across the programs of a route table.
//!
//! Route tables repeat themselves: `messageType = 'alert'` or `$body.type = 'telemetry'` opens
//! many routes of a hub, and each was compiled on its own. [`share`] finds every test (a
//! comparison, logical operator or function call) that occurs more than once across a set of
//! programs and wraps each occurrence in a [`Node::Shared`] with one id per distinct test. A
//! router's context keeps one result per id for the message being routed, so a repeated test
//! is evaluated once per message however many routes contain it. Evaluation has no side effects
//! and a test's value depends only on the message, so reusing it cannot change an answer; a
//! context without that store (a lone condition) evaluates the wrapped node as before.

use super::{Node, NodeId, Program};
use std::collections::HashMap;

/// Wraps the tests that `programs` share (see the module docs), numbered from 0
/// ([`Program::shared_ids`] tells how many a program uses).
pub(crate) fn share(programs: &mut [&mut Program]) {
    let mut interner = HashMap::new();
    let keys: Vec<Vec<Option<u32>>> = programs.iter().map(|p| p.keys(&mut interner)).collect();
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &key in keys.iter().flatten().flatten() {
        *counts.entry(key).or_default() += 1;
    }
    let mut ids: HashMap<u32, u32> = HashMap::new();
    for (program, keys) in programs.iter_mut().zip(&keys) {
        for (node, key) in keys.iter().enumerate() {
            let Some(key) = key.filter(|k| counts[k] > 1) else {
                continue;
            };
            let next = ids.len() as u32;
            let id = *ids.entry(key).or_insert(next);
            program.wrap(node as NodeId, id);
        }
        program.seal();
    }
}

impl Program {
    /// A structural key for each node that is a test worth sharing (`None` for the others:
    /// constants, plain reads, and anything that reads the twin): equal keys mean equal values
    /// on every message, whichever program the node is in. A key is the interned number of
    /// a description that names the node's operands by their own keys, so that describing a
    /// deep condition costs its size, not its size times its depth.
    fn keys(&self, interner: &mut HashMap<String, u32>) -> Vec<Option<u32>> {
        // Leaves and operands get a key too, so that the tests above them can be keyed;
        // `testable` says which keys are tests.
        let mut keys: Vec<Option<u32>> = Vec::with_capacity(self.nodes.len());
        let mut testable = Vec::with_capacity(self.nodes.len());
        // Children always come before their parents in `nodes` (the compiler pushes a node
        // after compiling its operands), so one forward pass sees every child's key first.
        for node in &self.nodes {
            let k = |id: &NodeId| keys.get(*id as usize).copied().flatten();
            let (key, test) = match node {
                Node::Const(v) => (Some(format!("C{v:?}")), false),
                Node::Prop(p) => (Some(format!("P{:?}{:?}", p.bag(), p.name())), false),
                Node::AppOrSysProp(a, s) => (Some(format!("Q{:?}{:?}", a.name(), s.name())), false),
                Node::Body(local, over) => {
                    let over = over.as_ref().map(|p| p.name());
                    let path = &self.paths[*local as usize];
                    (Some(format!("B{:?}{over:?}", path.to_string())), false)
                }
                Node::PathTest(test, local) => (
                    Some(format!(
                        "T{test:?}{:?}",
                        self.paths[*local as usize].to_string()
                    )),
                    true,
                ),
                Node::Twin(_) | Node::Shared(..) => (None, false),
                Node::Neg(a) => (k(a).map(|a| format!("Neg({a})")), false),
                Node::Not(a, ty) => (k(a).map(|a| format!("Not({a},{ty:?})")), true),
                Node::Arith(op, a, b, ty) => (
                    k(a).zip(k(b))
                        .map(|(a, b)| format!("Arith({op:?},{a},{b},{ty:?})")),
                    false,
                ),
                Node::Cmp(op, a, b, ty) => (
                    k(a).zip(k(b))
                        .map(|(a, b)| format!("Cmp({op:?},{a},{b},{ty:?})")),
                    true,
                ),
                Node::CmpCase {
                    op,
                    func,
                    arg,
                    other,
                    ty,
                    case_left,
                } => (
                    k(arg).zip(k(other)).map(|(a, o)| {
                        format!("CmpCase({op:?},{func:?},{a},{o},{ty:?},{case_left})")
                    }),
                    true,
                ),
                Node::And(a, b, lt, rt) => (
                    k(a).zip(k(b))
                        .map(|(a, b)| format!("And({a},{b},{lt:?},{rt:?})")),
                    true,
                ),
                Node::Or(a, b, lt, rt) => (
                    k(a).zip(k(b))
                        .map(|(a, b)| format!("Or({a},{b},{lt:?},{rt:?})")),
                    true,
                ),
                Node::Coalesce(a, b) => (
                    k(a).zip(k(b)).map(|(a, b)| format!("Coalesce({a},{b})")),
                    false,
                ),
                Node::Call(func, args) => {
                    let args: Option<Vec<String>> =
                        args.iter().map(|a| k(a).map(|a| a.to_string())).collect();
                    (
                        args.map(|a| format!("Call({func:?},{})", a.join(","))),
                        true,
                    )
                }
            };
            let next = interner.len() as u32;
            keys.push(key.map(|key| *interner.entry(key).or_insert(next)));
            testable.push(test);
        }
        keys.into_iter()
            .zip(testable)
            .map(|(key, test)| key.filter(|_| test))
            .collect()
    }

    /// How many shared-test ids this program's [`Node::Shared`] nodes need (its largest id
    /// plus one; 0 if it has none).
    pub(crate) fn shared_ids(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Shared(id, _) => Some(*id as usize + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Wraps node `node` in [`Node::Shared`] with id `id`: its content moves to a new node, and
    /// the wrapper takes its place, so every reference to it goes through the wrapper.
    fn wrap(&mut self, node: NodeId, id: u32) {
        let moved = self.nodes.len() as NodeId;
        let inner = std::mem::replace(&mut self.nodes[node as usize], Node::Shared(id, moved));
        self.nodes.push(inner);
    }
}
