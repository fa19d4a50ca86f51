//! Who forked whom, shared by the checker and the runner: what a task can
//! use is what it created plus what its ancestors had when its line forked
//! off them, and this answers that without copying names at a fork.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Who forked whom: each task (in the order the tasks
/// were created) with the task it forked from, how many names were defined
/// by then, and links to its ancestors 1, 2, 4, 8 … generations up. What
/// a task can use is computed from this, so a fork copies no names, and
/// the question costs O(log depth) instead of a walk up a fork chain
/// (which made a chain of N forks N² steps).
#[derive(Clone, Debug, Default)]
pub(crate) struct Lineage {
    /// Task name → its node. Ordered, not hashed: a scenario has a few
    /// tasks with short names, where comparing them costs less than
    /// hashing them, and the map is made anew for every run.
    /// The name is shared with the node's: one copy per task.
    index: BTreeMap<Arc<str>, usize>,
    pub(crate) nodes: Vec<Forked>,
    /// Every node's links up, one node's after another (see
    /// [`Forked::up`]): one buffer, not a vector per task.
    links: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct Forked {
    pub(crate) name: Arc<str>,
    depth: usize,
    /// The names defined when this task forked off its parent.
    names_then: usize,
    /// Where this node's links lie in [`Lineage::links`]: the `k`-th is
    /// the ancestor 2^k generations up (the first the parent).
    up: std::ops::Range<usize>,
}

impl Lineage {
    /// A new task: `parent` is the task it forked from and the number of
    /// names defined at the fork (`None` for a `task` line).
    pub(crate) fn add(&mut self, name: &str, parent: Option<(&str, usize)>) {
        let me = self.nodes.len();
        let start = self.links.len();
        let (depth, names_then) = match parent.and_then(|(p, n)| Some((*self.index.get(p)?, n))) {
            Some((p, n)) => {
                self.links.push(p);
                (self.nodes[p].depth + 1, n)
            }
            None => (0, 0),
        };
        // The ancestor 2^(k+1) up is the 2^k-th one's ancestor 2^k up.
        while let Some(&mid) = self.links[start..].last() {
            match self.up(mid).get(self.links.len() - start - 1) {
                Some(&next) => self.links.push(next),
                None => break,
            }
        }
        let up = start..self.links.len();
        let name: Arc<str> = Arc::from(name);
        self.nodes.push(Forked { name: name.clone(), depth, names_then, up });
        self.index.insert(name, me);
    }

    /// Node `n`'s links up.
    fn up(&self, n: usize) -> &[usize] {
        &self.links[self.nodes[n].up.clone()]
    }

    /// The node of task `name` (in the order the tasks were created).
    pub(crate) fn node(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// When node `o` is a proper ancestor of node `t`: the number of
    /// names defined when the line from `o` down to `t` forked off it.
    fn forked_from(&self, mut t: usize, o: usize) -> Option<usize> {
        let od = self.nodes.get(o)?.depth;
        let mut lift = self.nodes[t].depth.checked_sub(od + 1)?;
        let mut k = 0;
        while lift > 0 {
            if lift & 1 == 1 {
                t = *self.up(t).get(k)?;
            }
            lift >>= 1;
            k += 1;
        }
        (self.up(t).first() == Some(&o)).then_some(self.nodes[t].names_then)
    }

    /// Can `task` use a name that task `owner` (by its node) defined as
    /// the `seq`-th name: its own names always; up the chain of parents,
    /// the names the ancestor had when the line forked off it, if such a
    /// name is `inheritable` (a pin or an mm hold belongs to the task that
    /// took it). The owner is a node, not a name: the checker and the
    /// runner keep that, not a copy of the owner's name, for every name.
    pub(crate) fn sees(&self, task: &str, owner: usize, seq: usize, inheritable: bool) -> bool {
        let Some(t) = self.node(task) else { return false };
        t == owner || (inheritable && self.forked_from(t, owner).is_some_and(|n| seq < n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The skip links answer what a walk up the parents answers, on a
    /// random tree of forks with names defined between them.
    #[test]
    fn the_lineage_agrees_with_a_walk_up_the_parents() {
        let mut lin = Lineage::default();
        let mut parent: Vec<Option<(usize, usize)>> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for i in 0..600 {
            // Mostly deep chains, sometimes a new branch or a new root.
            let p = match (i, next(10)) {
                (0, _) | (_, 0) => None,
                (_, 1..=3) => Some(next(i)),
                _ => Some(i - 1),
            };
            let names_then = i * 3 + next(3);
            parent.push(p.map(|p| (p, names_then)));
            lin.add(&format!("T{i}"), p.map(|p| (format!("T{p}"), names_then)).as_ref().map(|(n, k)| (n.as_str(), *k)));
        }
        let walk = |mut t: usize, o: usize| -> Option<usize> {
            while let Some((p, n)) = parent[t] {
                if p == o {
                    return Some(n);
                }
                t = p;
            }
            None
        };
        for _ in 0..20_000 {
            let (t, o) = (next(600), next(600));
            assert_eq!(lin.node(&format!("T{t}")), Some(t));
            assert_eq!(lin.forked_from(t, o), walk(t, o), "T{t} from T{o}");
        }
    }
}
