// Reference oracle v1 (spec §7.1) batches, shared by the observer and detector tests.
#pragma once
#include <ATen/ATen.h>

// (2, 5, 5), 10 values per channel: a ramp 1+k..10+k, a constant 7, zeros, -1..-10, nine zeros and 50*(k+1).
inline at::Tensor v1_batch(int k) {
  at::Tensor x = at::zeros({2, 5, 5});
  at::Tensor base = at::arange(10, at::kFloat).reshape({2, 5});
  x.select(1, 0).copy_(base + 1 + k);
  x.select(1, 1).fill_(7.0);
  x.select(1, 3).copy_(-(base + 1));
  at::Tensor c4 = at::zeros({10});
  c4[9] = 50.0 * (k + 1);
  x.select(1, 4).copy_(c4.reshape({2, 5}));
  return x;
}
