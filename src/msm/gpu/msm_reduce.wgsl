// Window sums: sum_j (j + 1) * B_j over the buckets of each window. Thread t
// takes one segment [lo, hi) of one window's buckets, forms the running-sum
// total sum_j (j - lo + 1) * B_j and adds lo * (sum_j B_j) by double-and-add.
// The segment sums (tagged with window + 1) are then summed per window by the
// segmented reduction in msm_accumulate.wgsl.

fn load_bucket(b: u32) -> Xyzz {
    var w: array<u32, XYZZ_WORDS>;
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        w[k] = bucket_acc[b * XYZZ_WORDS + k];
    }
    return xyzz_from_words(w);
}

// The segment's additions run as one sequence through a single xyzz_add call
// site (doublings are p + p), so CPU drivers inline the curve code once:
// 2 * (hi - lo) running-sum steps, then double-and-add of lo * running, then
// the final total + scaled.
@compute @workgroup_size(WORKGROUP_SIZE)
fn window_segments(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(gid, groups);
    if t >= params.windows * params.segs {
        return;
    }
    let w = t / params.segs;
    let lo = (t % params.segs) * params.seg_len;
    let hi = min(lo + params.seg_len, params.buckets);
    var bits = 0u;
    if lo != 0u {
        bits = 32u - countLeadingZeros(lo);
    }
    let sum_steps = 2u * (hi - lo);
    let steps = sum_steps + 2u * bits + 1u;
    var running = xyzz_infinity();
    var total = xyzz_infinity();
    var scaled = xyzz_infinity();
    for (var step = 0u; step < steps; step++) {
        var a = total;
        var b = scaled;
        var dest = 1u;
        if step < sum_steps {
            if step % 2u == 0u {
                a = running;
                b = load_bucket(w * params.buckets + hi - 1u - step / 2u);
                dest = 0u;
            } else {
                b = running;
            }
        } else if step < steps - 1u {
            let k = step - sum_steps;
            a = scaled;
            dest = 2u;
            if k % 2u == 1u {
                b = xyzz_infinity();
                if ((lo >> (bits - 1u - k / 2u)) & 1u) == 1u {
                    b = running;
                }
            }
        }
        let r = xyzz_add(a, b);
        if dest == 0u {
            running = r;
        } else if dest == 1u {
            total = r;
        } else {
            scaled = r;
        }
    }
    var words = xyzz_to_words(total);
    for (var k = 0u; k < XYZZ_WORDS; k++) {
        seg_out[t * XYZZ_WORDS + k] = words[k];
    }
    seg_window[t] = w + 1u;
}
