//! Where a template failed, and which templates it may not call.
//!
//! gotmpl's execution errors carry no position. On failure the main tree is cut after a
//! position and run again: the first position whose cut fails is the failing action (document
//! order is execution order, so failure is monotone in the cut). A binary search costs a few
//! re-runs, on the error path only.

use std::collections::{BTreeMap, BTreeSet};

use gotmpl::Template;
use gotmpl::Value;
use gotmpl::parse::{ActionNode, BranchNode, ListNode, Node, PipeNode};

use crate::Limits;
use crate::budget::{self, Failure};
use crate::error::{ExceededLimit, TemplateError, line_col, sanitize};

/// Name under which a cut tree is executed.
const PROBE: &str = "\u{1}probe";

/// Refuses recursive `{{template}}` calls (gotmpl bounds their depth, not their breadth: two
/// self-calls per level would run 2^depth times) and call graphs that expand past `max_nodes`.
pub(crate) fn check_calls(
    tmpl: &Template,
    main: &str,
    name: &str,
    text: &str,
    max_nodes: u64,
) -> Result<(), TemplateError> {
    let mut graph: BTreeMap<String, (u64, Vec<(String, usize)>)> = BTreeMap::new();
    for t in tmpl.templates() {
        if let Some(tree) = tmpl.lookup(t) {
            let mut calls = Vec::new();
            let size = collect_calls(tree, &mut calls);
            graph.insert(t.to_owned(), (size, calls));
        }
    }
    if graph.values().all(|(_, calls)| calls.is_empty()) {
        return Ok(());
    }
    let mut memo: BTreeMap<String, u64> = BTreeMap::new();
    let mut path = BTreeSet::new();
    let expanded = expand(main, &graph, &mut memo, &mut path).map_err(|(callee, offset)| {
        let (line, col) = line_col(text, offset);
        TemplateError::Parse {
            name: name.to_owned(),
            line,
            col,
            message: format!("recursive call of template {callee:?} is not supported"),
        }
    })?;
    if expanded > max_nodes {
        return Err(TemplateError::Parse {
            name: name.to_owned(),
            line: 1,
            col: 1,
            message: format!("template calls expand to more than {max_nodes} nodes"),
        });
    }
    Ok(())
}

type Graph = BTreeMap<String, (u64, Vec<(String, usize)>)>;

fn expand(
    t: &str,
    graph: &Graph,
    memo: &mut BTreeMap<String, u64>,
    path: &mut BTreeSet<String>,
) -> Result<u64, (String, usize)> {
    if let Some(n) = memo.get(t) {
        return Ok(*n);
    }
    let Some((size, calls)) = graph.get(t) else {
        return Ok(0);
    };
    path.insert(t.to_owned());
    let mut total = *size;
    for (callee, offset) in calls {
        if path.contains(callee) {
            return Err((callee.clone(), *offset));
        }
        total = total.saturating_add(expand(callee, graph, memo, path)?);
    }
    path.remove(t);
    memo.insert(t.to_owned(), total);
    Ok(total)
}

fn collect_calls(list: &ListNode, calls: &mut Vec<(String, usize)>) -> u64 {
    let mut size = 0u64;
    for node in &list.nodes {
        size += 1;
        match node {
            Node::Template(t) => calls.push((t.name.to_string(), t.pos.offset)),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                size += collect_calls(&b.body, calls);
                if let Some(e) = &b.else_body {
                    size += collect_calls(e, calls);
                }
            }
            Node::List(l) => size += collect_calls(l, calls),
            _ => {}
        }
    }
    size
}

/// Turns a failed execution into the crate's error: its position, and a message without values.
pub(crate) fn explain(
    tmpl: &Template,
    main: &str,
    name: &str,
    text: &str,
    dot: &Value,
    limits: &Limits,
    failure: Failure,
) -> TemplateError {
    let position = match failure.limit {
        // Re-running a render that ran out of time would take that time again per probe.
        Some(ExceededLimit::Time(_)) => None,
        _ => locate(tmpl, main, dot, limits).map(|offset| line_col(text, offset)),
    };
    match failure.limit {
        Some(limit) => TemplateError::Limit {
            name: name.to_owned(),
            position,
            limit,
        },
        None => TemplateError::Execute {
            name: name.to_owned(),
            position,
            message: scrub(sanitize(&failure.error, text), dot),
        },
    }
}

/// Replaces any data value (of four bytes or more) that a message might still hold.
fn scrub(mut message: String, dot: &Value) -> String {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>, depth: usize) {
        match v {
            Value::String(s) if s.len() >= 4 => out.push(s),
            Value::List(items) if depth < 8 => {
                items.iter().for_each(|i| strings(i, out, depth + 1));
            }
            Value::Map(m) if depth < 8 => m.values().for_each(|i| strings(i, out, depth + 1)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    strings(dot, &mut values, 0);
    values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for v in values {
        if message.contains(v) {
            message = message.replace(v, "[value]");
        }
    }
    message
}

/// The offset of the first action whose inclusion makes the main tree fail.
fn locate(tmpl: &Template, main: &str, dot: &Value, limits: &Limits) -> Option<usize> {
    let tree = tmpl.lookup(main)?;
    let mut offsets = Vec::new();
    positions(tree, &mut offsets);
    offsets.sort_unstable();
    offsets.dedup();
    let fails = |offset: usize| {
        let probe = tmpl
            .clone()
            .add_parse_tree(PROBE, cut_list(tree, offset + 1));
        budget::execute(&probe, Some(PROBE), dot, limits).is_err()
    };
    // Smallest index whose cut fails.
    let (mut lo, mut hi) = (0, offsets.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(offsets[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    offsets.get(lo).copied()
}

fn positions(list: &ListNode, out: &mut Vec<usize>) {
    for node in &list.nodes {
        match node {
            Node::Text(t) => out.push(t.pos.offset),
            Node::Action(a) => {
                out.push(a.pos.offset);
                pipe_positions(&a.pipe, out);
            }
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                out.push(b.pos.offset);
                pipe_positions(&b.pipe, out);
                positions(&b.body, out);
                if let Some(e) = &b.else_body {
                    positions(e, out);
                }
            }
            Node::Template(t) => out.push(t.pos.offset),
            Node::List(l) => positions(l, out),
            _ => {}
        }
    }
}

fn pipe_positions(pipe: &PipeNode, out: &mut Vec<usize>) {
    out.extend(pipe.commands.iter().map(|c| c.pos.offset));
}

/// `list` with every node at or after `limit` removed; a pipeline cut inside a branch's
/// condition becomes a plain action, so control flow never runs on a partial condition.
fn cut_list(list: &ListNode, limit: usize) -> ListNode {
    ListNode {
        pos: list.pos,
        nodes: list
            .nodes
            .iter()
            .filter_map(|n| cut_node(n, limit))
            .collect(),
    }
}

fn cut_pipe(pipe: &PipeNode, limit: usize) -> Option<PipeNode> {
    let commands: Vec<_> = pipe
        .commands
        .iter()
        .filter(|c| c.pos.offset < limit)
        .cloned()
        .collect();
    (!commands.is_empty()).then(|| PipeNode {
        pos: pipe.pos,
        decl: pipe.decl.clone(),
        commands,
        is_assign: pipe.is_assign,
    })
}

fn cut_node(node: &Node, limit: usize) -> Option<Node> {
    match node {
        Node::Text(t) => (t.pos.offset < limit).then(|| node.clone()),
        Node::Action(a) => {
            if a.pos.offset >= limit {
                return None;
            }
            let pipe = cut_pipe(&a.pipe, limit)?;
            Some(Node::Action(ActionNode { pos: a.pos, pipe }))
        }
        Node::If(b) | Node::With(b) | Node::Range(b) => {
            if b.pos.offset >= limit {
                return None;
            }
            let whole = b.pipe.commands.iter().all(|c| c.pos.offset < limit);
            if !whole {
                // Evaluate the partial condition only; declarations would leak out of scope.
                let mut pipe = cut_pipe(&b.pipe, limit)?;
                pipe.decl.clear();
                pipe.is_assign = false;
                return Some(Node::Action(ActionNode { pos: b.pos, pipe }));
            }
            let branch = BranchNode {
                pos: b.pos,
                pipe: b.pipe.clone(),
                body: cut_list(&b.body, limit),
                else_body: b.else_body.as_ref().map(|e| cut_list(e, limit)),
            };
            Some(match node {
                Node::If(_) => Node::If(branch),
                Node::With(_) => Node::With(branch),
                _ => Node::Range(branch),
            })
        }
        Node::Template(t) => (t.pos.offset < limit).then(|| node.clone()),
        Node::List(l) => Some(Node::List(cut_list(l, limit))),
        Node::Break(p) | Node::Continue(p) => (p.offset < limit).then(|| node.clone()),
        Node::Define(_) => Some(node.clone()),
    }
}
