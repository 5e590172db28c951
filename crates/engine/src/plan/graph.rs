//! The stage graph: a topological order of the stages a target needs.

use std::collections::BTreeSet;

/// The stages of `nodes` in an order where every stage comes after the stages it
/// depends on (`deps`), lowest index first among the ready ones, so the order is a
/// function of the Dockerfile alone. `Err(stage)` names a stage on a cycle.
///
/// Iterative (no recursion): a chain of a thousand stages needs no deep stack.
pub(crate) fn topological_order(
    nodes: &BTreeSet<usize>,
    deps: &dyn Fn(usize) -> BTreeSet<usize>,
) -> Result<Vec<usize>, usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let max = nodes.iter().next_back().map(|m| m + 1).unwrap_or(0);
    let mut mark = vec![Mark::New; max];
    let mut order = Vec::with_capacity(nodes.len());
    for &start in nodes {
        if mark[start] != Mark::New {
            continue;
        }
        // (node, its deps still to visit)
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        mark[start] = Mark::Open;
        stack.push((start, deps(start).into_iter().rev().collect()));
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(d) if d >= max || !nodes.contains(&d) => continue,
                Some(d) => match mark[d] {
                    Mark::Done => continue,
                    Mark::Open => return Err(d),
                    Mark::New => {
                        mark[d] = Mark::Open;
                        let next: Vec<usize> = deps(d).into_iter().rev().collect();
                        stack.push((d, next));
                    }
                },
                None => {
                    let n = *node;
                    mark[n] = Mark::Done;
                    order.push(n);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(edges: &[(usize, usize)], nodes: &[usize]) -> Result<Vec<usize>, usize> {
        let nodes: BTreeSet<usize> = nodes.iter().copied().collect();
        let e = edges.to_vec();
        topological_order(&nodes, &move |n| {
            e.iter().filter(|(a, _)| *a == n).map(|(_, b)| *b).collect()
        })
    }

    #[test]
    fn dependencies_come_first() {
        assert_eq!(
            order(&[(2, 0), (2, 1), (1, 0)], &[0, 1, 2]),
            Ok(vec![0, 1, 2])
        );
        assert_eq!(order(&[(0, 2)], &[0, 2]), Ok(vec![2, 0]));
        assert_eq!(order(&[], &[3, 1]), Ok(vec![1, 3]));
    }

    #[test]
    fn cycles_are_found() {
        assert!(order(&[(0, 1), (1, 0)], &[0, 1]).is_err());
        assert!(order(&[(0, 1), (1, 2), (2, 0)], &[0, 1, 2]).is_err());
    }

    #[test]
    fn long_chains_need_no_deep_stack() {
        let n = 100_000;
        let nodes: BTreeSet<usize> = (0..n).collect();
        let o = topological_order(&nodes, &|i| {
            if i > 0 {
                BTreeSet::from([i - 1])
            } else {
                BTreeSet::new()
            }
        })
        .unwrap();
        assert_eq!(o.first(), Some(&0));
        assert_eq!(o.len(), n);
    }
}
