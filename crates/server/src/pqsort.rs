//! A partial quicksort: sorts only as much of a slice as it takes to put the elements of
//! ranks `lo..=hi` in their places, as Redis's `pqsort` does for GEOSEARCH ... COUNT and
//! SORT ... BY ... LIMIT.
//!
//! The algorithm is Bentley and McIlroy's quicksort ("Engineering a Sort Function", 1993:
//! median of three, or a ninther above 40 elements; three-way partitioning that gathers
//! elements equal to the pivot at both ends; insertion sort below 7 elements or when a
//! partition moved nothing), skipping the parts that hold none of the wanted ranks. It is
//! not stable: elements that compare equal end up in the order this exact sequence of
//! swaps leaves them in, which is what makes Redis's ties reproducible, so the steps are
//! kept as the algorithm specifies them.

use std::cmp::Ordering;

/// Puts the elements of ranks `lo..=hi` (by `cmp`) at those positions of `v`, in order.
pub fn partial_sort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    sort_part(v, 0, v.len(), lo, hi, cmp);
}

/// The index of the median of the elements at `a`, `b`, `c`.
fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    if cmp(&v[a], &v[b]).is_lt() {
        if cmp(&v[b], &v[c]).is_lt() {
            b
        } else if cmp(&v[a], &v[c]).is_lt() {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]).is_gt() {
        b
    } else if cmp(&v[a], &v[c]).is_lt() {
        a
    } else {
        c
    }
}

/// Insertion sort of `v[a..a + n]`.
fn insertion<T>(v: &mut [T], a: usize, n: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    for m in a + 1..a + n {
        let mut l = m;
        while l > a && cmp(&v[l - 1], &v[l]).is_gt() {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

/// Swaps `n` elements from `a` with `n` elements from `b`, pairwise.
fn swap_runs<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Sorts what of `v[a..a + n]` holds ranks in `lo..=hi`.
fn sort_part<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    lo: usize,
    hi: usize,
    cmp: &impl Fn(&T, &T) -> Ordering,
) {
    // Whether `first..=last` holds any wanted rank.
    let wanted =
        |first: usize, last: usize| !((lo < first && hi < first) || (lo > last && hi > last));
    loop {
        if n < 7 {
            insertion(v, a, n, cmp);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (a, a + n - 1);
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let mut swapped = false;
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let r = cmp(&v[pb], &v[a]);
                if r.is_gt() {
                    break;
                }
                if r.is_eq() {
                    swapped = true;
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let r = cmp(&v[pc], &v[a]);
                if r.is_lt() {
                    break;
                }
                if r.is_eq() {
                    swapped = true;
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            swapped = true;
            pb += 1;
            pc -= 1;
        }
        if !swapped {
            // Already partitioned: the insertion sort finishes cheaply.
            insertion(v, a, n, cmp);
            return;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        swap_runs(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        swap_runs(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && wanted(a, a + r - 1) {
            sort_part(v, a, r, lo, hi, cmp);
        }
        let r = pd - pc;
        if r > 1 && wanted(pn - r, pn - 1) {
            a = pn - r;
            n = r;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn wanted_ranks_are_sorted() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..500 {
            let n = rng.gen_range(1..300);
            let v: Vec<u32> = (0..n).map(|_| rng.gen_range(0..50)).collect();
            let lo = rng.gen_range(0..n);
            let hi = rng.gen_range(lo..n);
            let mut got = v.clone();
            partial_sort(&mut got, lo, hi, &|a: &u32, b: &u32| a.cmp(b));
            let mut want = v.clone();
            want.sort();
            assert_eq!(got[lo..=hi], want[lo..=hi]);
            got.sort();
            assert_eq!(got, want, "a permutation");
        }
    }
}
