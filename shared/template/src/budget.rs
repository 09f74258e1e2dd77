//! Bounded execution: a per-render budget of calls, time and value size kept in a thread-local
//! (functions run synchronously on the rendering thread), and an output writer with a byte cap.

use std::cell::RefCell;
use std::fmt;
use std::time::Instant;

use gotmpl::{Template, Value};

use crate::Limits;
use crate::error::ExceededLimit;

struct State {
    limits: Limits,
    /// Address of the root context map: ESO's `map[string]string`, whose missing keys `index`
    /// reads as "" (other maps are `map[string]interface{}`: nil).
    root: usize,
    calls: u64,
    deadline: Instant,
    tripped: Option<ExceededLimit>,
    /// Keys derived during this render, by a digest of what they were derived from:
    /// `derivePassword` runs scrypt once per master password and user, however many sites a
    /// template derives for. Dropped with the render.
    derived: Vec<([u8; 32], Vec<u8>)>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Why an execution failed: gotmpl's error, and the limit behind it, if any.
pub(crate) struct Failure {
    pub error: gotmpl::TemplateError,
    pub limit: Option<ExceededLimit>,
}

/// Restores the enclosing render's state (there is none outside tests) when a render ends.
struct Scope(Option<State>);

impl Scope {
    fn enter(limits: &Limits, dot: &Value) -> Self {
        let state = State {
            limits: *limits,
            root: map_address(dot),
            calls: 0,
            deadline: Instant::now() + limits.timeout,
            tripped: None,
            derived: Vec::new(),
        };
        Self(STATE.with(|s| s.borrow_mut().replace(state)))
    }

    fn tripped(&self) -> Option<ExceededLimit> {
        STATE.with(|s| s.borrow().as_ref().and_then(|st| st.tripped))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let prev = self.0.take();
        STATE.with(|s| *s.borrow_mut() = prev);
    }
}

/// The error a function returns once a limit tripped; the render reports the limit instead.
pub(crate) const LIMIT_MESSAGE: &str = "limit exceeded";

fn trip(limit: ExceededLimit) -> String {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.tripped.get_or_insert(limit);
        }
    });
    LIMIT_MESSAGE.to_owned()
}

fn limits() -> Limits {
    STATE.with(|s| s.borrow().as_ref().map(|st| st.limits).unwrap_or_default())
}

fn map_address(v: &Value) -> usize {
    match v {
        Value::Map(m) => std::sync::Arc::as_ptr(m) as *const () as usize,
        _ => 0,
    }
}

/// Whether `v` is the render's root context (ESO's `map[string]string`).
pub(crate) fn is_root(v: &Value) -> bool {
    let addr = map_address(v);
    addr != 0 && STATE.with(|s| s.borrow().as_ref().is_some_and(|st| st.root == addr))
}

/// The value limit of the render in progress.
pub(crate) fn max_value_bytes() -> usize {
    limits().max_value_bytes
}

/// Counts a function call and checks the clock.
pub(crate) fn on_call() -> Result<(), String> {
    let over = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let st = s.as_mut()?;
        st.calls += 1;
        if st.calls > st.limits.max_function_calls {
            return Some(ExceededLimit::FunctionCalls(st.limits.max_function_calls));
        }
        (Instant::now() > st.deadline).then_some(ExceededLimit::Time(st.limits.timeout))
    });
    match over {
        Some(limit) => Err(trip(limit)),
        None => Ok(()),
    }
}

fn time_is_up() -> bool {
    let over = STATE.with(|s| {
        let s = s.borrow();
        let st = s.as_ref()?;
        (Instant::now() > st.deadline).then_some(ExceededLimit::Time(st.limits.timeout))
    });
    match over {
        Some(limit) => {
            trip(limit);
            true
        }
        None => false,
    }
}

/// Fails once the render's time is up: for functions whose work is long enough to check the
/// clock while they run (key generation between prime candidates).
pub(crate) fn check_time() -> Result<(), String> {
    if time_is_up() {
        return Err(LIMIT_MESSAGE.to_owned());
    }
    Ok(())
}

/// A key this render already derived from inputs with digest `id`.
pub(crate) fn derived_key(id: &[u8; 32]) -> Option<Vec<u8>> {
    STATE.with(|s| {
        let s = s.borrow();
        let st = s.as_ref()?;
        st.derived
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.clone())
    })
}

/// Remembers a derived key for the rest of the render (a few dozen at most).
pub(crate) fn remember_derived_key(id: [u8; 32], key: Vec<u8>) {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut()
            && st.derived.len() < 32
        {
            st.derived.push((id, key));
        }
    });
}

/// Fails unless a value of `size` printed bytes fits the value limit. Functions call it
/// before they allocate.
pub(crate) fn ensure_size(size: usize) -> Result<(), String> {
    let max = limits().max_value_bytes;
    if size > max {
        return Err(trip(ExceededLimit::ValueBytes(max)));
    }
    Ok(())
}

/// Fails unless `len` list elements fit the value limit (an element prints as at least two
/// bytes: itself and a separator).
pub(crate) fn ensure_len(len: usize) -> Result<(), String> {
    ensure_size(len.saturating_mul(2))
}

/// Fails unless `value`, as printed, fits the value limit. Stops counting at the limit, so a
/// deeply shared structure costs no more than the limit to check.
pub(crate) fn check_value(value: &Value) -> Result<(), String> {
    let max = limits().max_value_bytes;
    if measure(value, max) > max {
        return Err(trip(ExceededLimit::ValueBytes(max)));
    }
    Ok(())
}

/// An upper bound of `value`'s printed size, saturating just past `cap`.
pub(crate) fn measure(value: &Value, cap: usize) -> usize {
    fn go(v: &Value, cap: usize, acc: &mut usize) {
        if *acc > cap {
            return;
        }
        match v {
            Value::String(s) => *acc += s.len(),
            Value::List(items) => {
                *acc += 2;
                for item in items.iter() {
                    *acc += 1;
                    go(item, cap, acc);
                    if *acc > cap {
                        return;
                    }
                }
            }
            Value::Map(map) => {
                *acc += 5;
                for (k, item) in map.iter() {
                    *acc += k.len() + 2;
                    go(item, cap, acc);
                    if *acc > cap {
                        return;
                    }
                }
            }
            Value::Int(n) => *acc += n.unsigned_abs().checked_ilog10().unwrap_or(0) as usize + 2,
            Value::Uint(n) => *acc += n.checked_ilog10().unwrap_or(0) as usize + 1,
            _ => *acc += 8,
        }
    }
    let mut acc = 0;
    go(value, cap, &mut acc);
    acc
}

/// The output sink: a string that refuses to grow past the byte limit, and checks the clock
/// every few hundred writes.
struct Sink {
    out: String,
    max: usize,
    writes: u32,
    over: bool,
}

impl fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.out.len() + s.len() > self.max {
            self.over = true;
            return Err(fmt::Error);
        }
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(256) && time_is_up() {
            return Err(fmt::Error);
        }
        self.out.push_str(s);
        Ok(())
    }
}

/// Executes template `name` of `tmpl` (the main one when `None`) within `limits`.
pub(crate) fn execute(
    tmpl: &Template,
    name: Option<&str>,
    dot: &Value,
    limits: &Limits,
) -> Result<String, Failure> {
    let scope = Scope::enter(limits, dot);
    let mut sink = Sink {
        out: String::new(),
        max: limits.max_output_bytes,
        writes: 0,
        over: false,
    };
    let result = match name {
        None => tmpl.execute_fmt(&mut sink, dot),
        Some(n) => tmpl.execute_template_fmt(&mut sink, n, dot),
    };
    match result {
        Ok(()) => Ok(sink.out),
        Err(error) => {
            let limit = if sink.over {
                Some(ExceededLimit::OutputBytes(limits.max_output_bytes))
            } else if let Some(l) = scope.tripped() {
                Some(l)
            } else {
                match error {
                    gotmpl::TemplateError::RangeIterLimit => {
                        Some(ExceededLimit::RangeIterations(limits.max_range_iterations))
                    }
                    gotmpl::TemplateError::RecursionLimit => Some(ExceededLimit::Depth),
                    _ => None,
                }
            };
            Err(Failure { error, limit })
        }
    }
}
