//! Whether the IAM resource of one route can match a request that API
//! Gateway serves with another route: an exact, bounded search.
//!
//! A request path is a sequence of segments. What decides every matcher is
//! only whether a segment equals one of the table's literals, so the search
//! runs over a finite alphabet: each literal, plus "any other value". Over it
//! every template is a deterministic automaton (a position, or dead), and an
//! ARN resource (a literal or a `*` spanning one or more whole segments, per
//! segment) is a small NFA tracked as a bit set. A breadth-first search over
//! the product (resource NFA, target route, every more specific route that
//! could also match) finds a path the resource matches, the target route
//! matches, and no more specific route matches, or proves there is none.
//! Every state is visited once, and a global budget turns a manifest too
//! complex to analyse into a refusal (fail closed), never a hang.

use std::collections::{HashSet, VecDeque};

use super::Segment;

/// A segment value: one of the table's literals, or any other value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sym<'a> {
    Lit(&'a str),
    Other,
}

/// A template automaton that can no longer match.
const DEAD: u8 = u8::MAX;

/// States the whole analysis may visit before the manifest is refused.
pub(super) const BUDGET: u64 = 4_000_000;

/// The analysis ran out of budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooComplex;

fn step_template(segments: &[Segment], pos: u8, sym: Sym<'_>) -> u8 {
    if pos == DEAD {
        return DEAD;
    }
    match segments.get(usize::from(pos)) {
        Some(Segment::Literal(text)) => {
            if sym == Sym::Lit(text) {
                pos + 1
            } else {
                DEAD
            }
        }
        Some(Segment::Param(_) | Segment::Greedy(_)) => pos + 1,
        // Past the end: only a greedy last segment keeps matching.
        None if matches!(segments.last(), Some(Segment::Greedy(_))) => pos,
        None => DEAD,
    }
}

fn accepts_template(segments: &[Segment], pos: u8) -> bool {
    usize::from(pos) == segments.len()
}

fn expected_literal(segments: &[Segment], pos: u8) -> Option<&str> {
    match segments.get(usize::from(pos)) {
        Some(Segment::Literal(text)) => Some(text),
        _ => None,
    }
}

/// The ARN resource of a route as an NFA over segments: bit `2k` is "at
/// atom k", bit `2k + 1` is "inside the `*` of atom k, one segment or more
/// consumed". Bit `2m` (past the last atom) accepts.
struct Glob<'a> {
    segments: &'a [Segment],
}

impl Glob<'_> {
    fn is_star(&self, k: usize) -> bool {
        matches!(
            self.segments.get(k),
            Some(Segment::Param(_) | Segment::Greedy(_))
        )
    }

    /// A `*` that has consumed a segment may end: on to the next atom.
    fn closure(&self, mut mask: u128) -> u128 {
        for k in 0..self.segments.len() {
            if mask & (1 << (2 * k + 1)) != 0 {
                mask |= 1 << (2 * (k + 1));
            }
        }
        mask
    }

    fn start(&self) -> u128 {
        self.closure(1)
    }

    fn accepts(&self, mask: u128) -> bool {
        mask & (1 << (2 * self.segments.len())) != 0
    }

    fn step(&self, mask: u128, sym: Sym<'_>) -> u128 {
        let mut next = 0u128;
        for k in 0..self.segments.len() {
            if mask & (1 << (2 * k)) != 0 {
                match self.segments.get(k) {
                    Some(Segment::Literal(text)) if sym == Sym::Lit(text) => {
                        next |= 1 << (2 * (k + 1));
                    }
                    _ if self.is_star(k) => next |= 1 << (2 * k + 1),
                    _ => {}
                }
            }
            if mask & (1 << (2 * k + 1)) != 0 {
                next |= 1 << (2 * k + 1);
            }
        }
        self.closure(next)
    }

    fn expected_literals(&self, mask: u128) -> impl Iterator<Item = &str> + '_ {
        (0..self.segments.len())
            .filter(move |k| mask & (1 << (2 * k)) != 0)
            .filter_map(|k| match self.segments.get(k) {
                Some(Segment::Literal(text)) => Some(text.as_str()),
                _ => None,
            })
    }
}

/// Whether some path is matched by `resource`'s ARN pattern and by `target`,
/// and by none of `shadows` (the routes more specific than `target` that
/// would serve it instead). `budget` is shared by the whole analysis.
pub(super) fn reaches(
    resource: &[Segment],
    target: &[Segment],
    shadows: &[&[Segment]],
    budget: &mut u64,
) -> Result<bool, TooComplex> {
    let glob = Glob { segments: resource };
    type State = (u128, u8, Vec<u8>);
    let start: State = (glob.start(), 0, vec![0; shadows.len()]);
    let mut seen: HashSet<State> = HashSet::new();
    let mut queue: VecDeque<State> = VecDeque::new();
    seen.insert(start.clone());
    queue.push_back(start);
    while let Some((mask, pos, others)) = queue.pop_front() {
        *budget = budget.checked_sub(1).ok_or(TooComplex)?;
        let shadowed = shadows
            .iter()
            .zip(&others)
            .any(|(s, &p)| accepts_template(s, p));
        if glob.accepts(mask) && accepts_template(target, pos) && !shadowed {
            return Ok(true);
        }
        let mut symbols: Vec<Sym<'_>> = vec![Sym::Other];
        let literals = glob
            .expected_literals(mask)
            .chain(expected_literal(target, pos))
            .chain(
                shadows
                    .iter()
                    .zip(&others)
                    .filter_map(|(s, &p)| expected_literal(s, p)),
            );
        for literal in literals {
            let sym = Sym::Lit(literal);
            if !symbols.contains(&sym) {
                symbols.push(sym);
            }
        }
        for sym in symbols {
            let next_mask = glob.step(mask, sym);
            let next_pos = step_template(target, pos, sym);
            if next_mask == 0 || next_pos == DEAD {
                continue;
            }
            let next_others: Vec<u8> = shadows
                .iter()
                .zip(&others)
                .map(|(s, &p)| step_template(s, p, sym))
                .collect();
            let state = (next_mask, next_pos, next_others);
            if seen.insert(state.clone()) {
                queue.push_back(state);
            }
        }
    }
    Ok(false)
}

/// Whether two templates match a common path (cheap pre-filter for shadows).
pub(super) fn overlap(a: &[Segment], b: &[Segment], budget: &mut u64) -> Result<bool, TooComplex> {
    let mut seen: HashSet<(u8, u8)> = HashSet::new();
    let mut queue: VecDeque<(u8, u8)> = VecDeque::from([(0, 0)]);
    seen.insert((0, 0));
    while let Some((pa, pb)) = queue.pop_front() {
        *budget = budget.checked_sub(1).ok_or(TooComplex)?;
        if accepts_template(a, pa) && accepts_template(b, pb) {
            return Ok(true);
        }
        let mut symbols = vec![Sym::Other];
        symbols.extend(
            expected_literal(a, pa)
                .into_iter()
                .chain(expected_literal(b, pb))
                .map(Sym::Lit),
        );
        for sym in symbols {
            let next = (step_template(a, pa, sym), step_template(b, pb, sym));
            if next.0 != DEAD && next.1 != DEAD && seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    Ok(false)
}
