//! Work spread over the machine's cores.

/// `f` of each of `items`, in order, on as many threads as there are cores (up to 4): each
/// thread takes a share of the items in turn and starts from a state of its own, `init()` (a
/// parser, a repository handle). A thread that panicked answers `None` for each item of its
/// share; the others' answers are kept.
pub fn map_in_chunks<T, S, R>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<Option<R>>
where
    T: Sync,
    R: Send,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk = items.len().div_ceil(threads).max(1);
    let (init, f) = (&init, &f);
    std::thread::scope(|s| {
        let shares: Vec<_> = items
            .chunks(chunk)
            .map(|share| {
                let handle = s.spawn(move || {
                    let mut state = init();
                    share.iter().map(|t| f(&mut state, t)).collect::<Vec<R>>()
                });
                (share.len(), handle)
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (len, handle) in shares {
            match handle.join() {
                Ok(answers) => out.extend(answers.into_iter().map(Some)),
                Err(_) => out.extend(std::iter::repeat_with(|| None).take(len)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_order_and_a_panicked_share_answers_none() {
        let items: Vec<u32> = (0..1000).collect();
        let got = map_in_chunks(
            &items,
            || 0u32,
            |calls, i| {
                *calls += 1;
                i * 2
            },
        );
        assert_eq!(got, items.iter().map(|i| Some(i * 2)).collect::<Vec<_>>());

        let got = map_in_chunks(
            &items,
            || (),
            |_, i| {
                assert!(*i != 0, "the first share panics");
                *i
            },
        );
        assert_eq!(got.len(), items.len());
        assert_eq!(got[0], None);
        assert_eq!(got[999], Some(999));
    }
}
