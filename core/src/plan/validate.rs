//! Validation and minimal repair of a plan.
//!
//! Every defect is fixed by the smallest change that removes it, and reported. Repairs never touch
//! a subtask that only depends on earlier ones, so subtasks started while the plan streamed stay
//! valid: duplicates rename the later copy, and cycles are broken by dropping a dependency on a
//! *later* subtask (every cycle has one), only where it closes a cycle.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::schema::{Plan, Subtask};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "defect", rename_all = "snake_case")]
pub enum Diagnostic {
    TooManySubtasks { kept: usize, dropped: usize },
    DuplicateId { id: String, renamed_to: String },
    EmptyTask { subtask: String },
    SelfDependency { subtask: String },
    UnknownDependency { subtask: String, missing: String },
    CycleBroken { subtask: String, dropped_dependency: String },
}

/// A plan that is a DAG over unique ids with non-empty tasks, in an order where every subtask
/// comes after its dependencies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedPlan {
    pub subtasks: Vec<Subtask>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable plan: no subtask with a task survived validation ({} repairs)", diagnostics.len())]
pub struct PlanRejected {
    pub diagnostics: Vec<Diagnostic>,
}

pub fn validate(plan: Plan, max_subtasks: usize) -> Result<ValidatedPlan, PlanRejected> {
    let mut diagnostics = Vec::new();
    let mut subtasks = plan.subtasks;

    if subtasks.len() > max_subtasks {
        diagnostics.push(Diagnostic::TooManySubtasks { kept: max_subtasks, dropped: subtasks.len() - max_subtasks });
        subtasks.truncate(max_subtasks);
    }

    let mut seen = HashSet::new();
    for subtask in &mut subtasks {
        if !seen.insert(subtask.id.clone()) {
            let renamed = (2..).map(|n| format!("{}-{n}", subtask.id)).find(|c| !seen.contains(c)).expect("unbounded");
            diagnostics.push(Diagnostic::DuplicateId { id: subtask.id.clone(), renamed_to: renamed.clone() });
            subtask.id = renamed.clone();
            seen.insert(renamed);
        }
    }

    // Empty subtasks go; whoever depended on them inherits their dependencies.
    let empty: HashMap<String, Vec<String>> = subtasks
        .iter()
        .filter(|s| s.task.trim().is_empty())
        .map(|s| (s.id.clone(), s.depends_on.clone()))
        .collect();
    for id in empty.keys() {
        diagnostics.push(Diagnostic::EmptyTask { subtask: id.clone() });
    }
    subtasks.retain(|s| !empty.contains_key(&s.id));
    for subtask in &mut subtasks {
        let mut inherited = Vec::new();
        let mut stack: Vec<String> = subtask.depends_on.clone();
        let mut visited = HashSet::new();
        while let Some(dep) = stack.pop() {
            if !visited.insert(dep.clone()) {
                continue;
            }
            match empty.get(&dep) {
                Some(grand) => stack.extend(grand.iter().cloned()),
                None => inherited.push(dep),
            }
        }
        inherited.reverse();
        subtask.depends_on = inherited;
    }

    let ids: HashSet<String> = subtasks.iter().map(|s| s.id.clone()).collect();
    for subtask in &mut subtasks {
        let mut kept = Vec::new();
        for dep in std::mem::take(&mut subtask.depends_on) {
            if dep == subtask.id {
                diagnostics.push(Diagnostic::SelfDependency { subtask: subtask.id.clone() });
            } else if !ids.contains(&dep) {
                diagnostics.push(Diagnostic::UnknownDependency { subtask: subtask.id.clone(), missing: dep });
            } else if !kept.contains(&dep) {
                kept.push(dep);
            }
        }
        subtask.depends_on = kept;
    }

    break_cycles(&mut subtasks, &mut diagnostics);
    if subtasks.is_empty() {
        return Err(PlanRejected { diagnostics });
    }
    Ok(ValidatedPlan { subtasks: topological_order(subtasks), diagnostics })
}

fn break_cycles(subtasks: &mut [Subtask], diagnostics: &mut Vec<Diagnostic>) {
    let position: HashMap<String, usize> = subtasks.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
    for at in 0..subtasks.len() {
        let forward: Vec<String> =
            subtasks[at].depends_on.iter().filter(|d| position[d.as_str()] > at).cloned().collect();
        for dep in forward {
            if reaches(subtasks, &position, position[&dep], at) {
                subtasks[at].depends_on.retain(|d| d != &dep);
                diagnostics.push(Diagnostic::CycleBroken { subtask: subtasks[at].id.clone(), dropped_dependency: dep });
            }
        }
    }
}

/// Whether `from` depends, directly or not, on `to`.
fn reaches(subtasks: &[Subtask], position: &HashMap<String, usize>, from: usize, to: usize) -> bool {
    let mut stack = vec![from];
    let mut visited = HashSet::new();
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if visited.insert(node) {
            stack.extend(subtasks[node].depends_on.iter().map(|d| position[d.as_str()]));
        }
    }
    false
}

/// Stable topological order: the planner's order wherever it already respects dependencies.
fn topological_order(mut pending: Vec<Subtask>) -> Vec<Subtask> {
    let mut ordered: Vec<Subtask> = Vec::with_capacity(pending.len());
    let mut placed = HashSet::new();
    while !pending.is_empty() {
        let next = pending
            .iter()
            .position(|s| s.depends_on.iter().all(|d| placed.contains(d)))
            .expect("cycles were broken");
        let subtask = pending.remove(next);
        placed.insert(subtask.id.clone());
        ordered.push(subtask);
    }
    ordered
}

impl ValidatedPlan {
    /// A plan of one subtask: answer the query directly, no synthesis step.
    pub fn is_direct(&self) -> bool {
        self.subtasks.len() == 1
    }

    pub fn get(&self, id: &str) -> Option<&Subtask> {
        self.subtasks.iter().find(|s| s.id == id)
    }

    /// Ancestors of `id` that are not its parents, nearest first.
    pub fn further_ancestors(&self, id: &str) -> Vec<&Subtask> {
        let Some(subtask) = self.get(id) else { return Vec::new() };
        let parents: HashSet<&str> = subtask.depends_on.iter().map(String::as_str).collect();
        let mut found: Vec<&Subtask> = Vec::new();
        let mut frontier: Vec<&str> = subtask.depends_on.iter().map(String::as_str).collect();
        let mut visited: HashSet<&str> = HashSet::new();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for node in frontier {
                for dep in &self.get(node).map(|s| s.depends_on.clone()).unwrap_or_default() {
                    let dep = self.get(dep).expect("validated").id.as_str();
                    if !parents.contains(dep) && visited.insert(dep) {
                        found.push(self.get(dep).expect("validated"));
                        next.push(dep);
                    }
                }
            }
            frontier = next;
        }
        found
    }

    /// Number of subtasks that depend directly on `id`.
    pub fn fan_out(&self, id: &str) -> usize {
        self.subtasks.iter().filter(|s| s.depends_on.iter().any(|d| d == id)).count()
    }

    /// The one step whose result nothing else uses, when there is exactly one: what the
    /// synthesis would only restate.
    pub fn single_final_step(&self) -> Option<&Subtask> {
        let mut finals = self.subtasks.iter().filter(|s| self.fan_out(&s.id) == 0);
        match (finals.next(), finals.next()) {
            (Some(last), None) => Some(last),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(subtasks: &[(&str, &str, &[&str])]) -> Plan {
        Plan { subtasks: subtasks.iter().map(|(id, task, deps)| Subtask::new(*id, *task, deps)).collect() }
    }

    fn deps(plan: &ValidatedPlan, id: &str) -> Vec<String> {
        plan.get(id).unwrap().depends_on.clone()
    }

    #[test]
    fn a_valid_plan_passes_unchanged() {
        let valid = validate(plan(&[("a", "x", &[]), ("b", "y", &["a"]), ("c", "z", &["a", "b"])]), 8).unwrap();
        assert!(valid.diagnostics.is_empty());
        assert_eq!(deps(&valid, "c"), vec!["a", "b"]);
    }

    #[test]
    fn duplicate_ids_rename_the_later_copy() {
        let valid = validate(plan(&[("a", "x", &[]), ("a", "y", &["a"])]), 8).unwrap();
        assert_eq!(valid.diagnostics, vec![Diagnostic::DuplicateId { id: "a".into(), renamed_to: "a-2".into() }]);
        assert_eq!(deps(&valid, "a-2"), vec!["a"]);
    }

    #[test]
    fn unknown_and_self_references_are_dropped() {
        let valid = validate(plan(&[("a", "x", &["a"]), ("b", "y", &["a", "zzz", "a"])]), 8).unwrap();
        assert_eq!(valid.diagnostics, vec![
            Diagnostic::SelfDependency { subtask: "a".into() },
            Diagnostic::UnknownDependency { subtask: "b".into(), missing: "zzz".into() },
        ]);
        assert_eq!(deps(&valid, "b"), vec!["a"]);
    }

    #[test]
    fn cycles_are_broken_minimally_at_the_forward_edge() {
        // a -> c (forward) closes the cycle a -> c -> b -> a; b -> d is forward but acyclic: kept.
        let valid = validate(plan(&[("a", "x", &["c"]), ("b", "y", &["a", "d"]), ("c", "z", &["b"]), ("d", "w", &[])]), 8).unwrap();
        assert_eq!(valid.diagnostics, vec![Diagnostic::CycleBroken { subtask: "a".into(), dropped_dependency: "c".into() }]);
        assert_eq!(deps(&valid, "b"), vec!["a", "d"]);
        assert_eq!(deps(&valid, "c"), vec!["b"]);
        let order: Vec<&str> = valid.subtasks.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order, vec!["a", "d", "b", "c"]);
    }

    #[test]
    fn empty_tasks_are_removed_and_their_dependents_relinked() {
        let valid = validate(plan(&[("a", "x", &[]), ("b", "  ", &["a"]), ("c", "z", &["b"])]), 8).unwrap();
        assert_eq!(valid.diagnostics, vec![Diagnostic::EmptyTask { subtask: "b".into() }]);
        assert_eq!(deps(&valid, "c"), vec!["a"]);
    }

    #[test]
    fn too_many_subtasks_keep_the_first() {
        let valid = validate(plan(&[("a", "x", &[]), ("b", "y", &["a"]), ("c", "z", &["b"])]), 2).unwrap();
        assert_eq!(valid.diagnostics, vec![Diagnostic::TooManySubtasks { kept: 2, dropped: 1 }]);
        assert_eq!(valid.subtasks.len(), 2);
    }

    #[test]
    fn nothing_usable_is_rejected() {
        let rejected = validate(plan(&[("a", "", &[])]), 8).unwrap_err();
        assert_eq!(rejected.diagnostics, vec![Diagnostic::EmptyTask { subtask: "a".into() }]);
        assert!(validate(Plan::default(), 8).is_err());
    }

    #[test]
    fn graph_queries() {
        let valid = validate(plan(&[("a", "x", &[]), ("b", "y", &["a"]), ("c", "z", &["b"]), ("d", "w", &["c", "a"])]), 8).unwrap();
        let further: Vec<&str> = valid.further_ancestors("d").iter().map(|s| s.id.as_str()).collect();
        assert_eq!(further, vec!["b"]);
        assert_eq!(valid.fan_out("a"), 2);
        assert_eq!(valid.single_final_step().map(|s| s.id.as_str()), Some("d"));
        let fork = validate(plan(&[("a", "x", &[]), ("b", "y", &[])]), 8).unwrap();
        assert!(fork.single_final_step().is_none(), "two results to combine");
        assert!(!valid.is_direct());
    }
}
