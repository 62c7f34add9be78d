// Depthwise 2-D convolution (NCHW) on the CPU, forward and both gradients, as a Paddle
// custom op (darts_paddle/kernels/depthwise.py loads it; docs/paddle.md section 11).
//
// x [N, Cin, H, W], w [Cout, 1, K, K] with Cout a multiple of Cin: output channel o reads
// input channel o % Cin (Cout = Cin: the plain depthwise conv; Cout = E * Cin: E edge-major
// copies of the input, as the search cell's fused edges need, without tiling it).
// Output [N, Cout, Ho, Wo] with Ho = (H + 2p - d(K-1) - 1) / s + 1, as conv2d.
//
// How it is fast: every plane is first copied into a zero-bordered buffer, so the loops
// over the output width read in range without a branch and keep all K*K taps of a pixel
// in registers (stride 1: contiguous, vectorised along the width); the gradient of x is
// the same correlation run on the output gradient spread out by the stride, with the
// kernel flipped; the gradient of w is reduced per channel (one thread owns a channel: no
// races).  OpenMP splits planes or channels over `threads` threads (num_threads clause:
// the process runs with OMP_NUM_THREADS=1).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

namespace {

struct Shape {
  int64_t n, cin, cout, h, w, ho, wo;
  int k, s, p, d;
  int64_t copies() const { return cout / cin; }
};

Shape make_shape(const std::vector<int64_t>& x, const std::vector<int64_t>& w, int stride,
                 int padding, int dilation) {
  PD_CHECK(x.size() == 4 && w.size() == 4, "depthwise conv: x and w must be 4-D (NCHW)");
  PD_CHECK(w[1] == 1 && w[2] == w[3], "depthwise conv: w must be [Cout, 1, K, K]");
  PD_CHECK(w[0] % x[1] == 0, "depthwise conv: Cout must be a multiple of Cin");
  PD_CHECK(stride >= 1 && dilation >= 1 && padding >= 0 && padding <= dilation * (w[2] - 1),
           "depthwise conv: needs stride, dilation >= 1 and 0 <= padding <= dilation*(K-1)");
  Shape s{x[0], x[1], w[0], x[2], x[3], 0, 0, static_cast<int>(w[2]), stride, padding,
          dilation};
  s.ho = (s.h + 2 * s.p - s.d * (s.k - 1) - 1) / s.s + 1;
  s.wo = (s.w + 2 * s.p - s.d * (s.k - 1) - 1) / s.s + 1;
  PD_CHECK(s.ho > 0 && s.wo > 0, "depthwise conv: the input is smaller than the kernel");
  return s;
}

// out[oh, ow] += sum_{kh, kw} w[kh*K + kw] * src[(oh*S + kh*D) * ld + ow*S + kw*D]
// for a padded plane `src` (every read in range).  KC, DC, SC: K, D, S known at compile
// time (0: take k, d, s).
template <typename T, int KC, int DC, int SC>
void correlate(const T* src, int64_t ld, const T* w, T* out, int64_t ho, int64_t wo, int k,
               int d, int s) {
  const int K = KC ? KC : k, D = DC ? DC : d, S = SC ? SC : s;
  for (int64_t oh = 0; oh < ho; ++oh) {
    const T* base = src + oh * S * ld;
    T* row = out + oh * wo;
#pragma omp simd
    for (int64_t ow = 0; ow < wo; ++ow) {
      T acc = row[ow];
      for (int kh = 0; kh < K; ++kh)
        for (int kw = 0; kw < K; ++kw)
          acc += w[kh * K + kw] * base[kh * D * ld + ow * S + kw * D];
      row[ow] = acc;
    }
  }
}

// gw[kh*K + kw] += sum_{oh, ow} g[oh*wo + ow] * src[(oh*S + kh*D) * ld + ow*S + kw*D]:
// per kernel row, one vector of partial sums per kernel column, reduced at the end.
template <typename T, int KC, int DC, int SC>
void correlate_filter(const T* src, int64_t ld, const T* g, int64_t ho, int64_t wo, double* gw,
                      int k, int d, int s) {
  constexpr int V = 32 / sizeof(T);  // one 256-bit vector
  constexpr int KB = KC ? KC : 1;    // kernel columns per pass over the plane
  const int K = KC ? KC : k, D = DC ? DC : d, S = SC ? SC : s;
  for (int kh = 0; kh < K; ++kh) {
    for (int kw0 = 0; kw0 < K; kw0 += KB) {
      T lanes[KB][V] = {};
      T tail[KB] = {};
      for (int64_t oh = 0; oh < ho; ++oh) {
        const T* grow = g + oh * wo;
        const T* srow = src + (oh * S + kh * D) * ld + kw0 * D;
        int64_t ow = 0;
        for (; ow + V <= wo; ow += V)
          for (int j = 0; j < KB; ++j)
#pragma omp simd
            for (int l = 0; l < V; ++l) lanes[j][l] += grow[ow + l] * srow[(ow + l) * S + j * D];
        for (; ow < wo; ++ow)
          for (int j = 0; j < KB; ++j) tail[j] += grow[ow] * srow[ow * S + j * D];
      }
      for (int j = 0; j < KB; ++j) {
        T sum = tail[j];
        for (int l = 0; l < V; ++l) sum += lanes[j][l];
        gw[kh * K + kw0 + j] += sum;
      }
    }
  }
}

template <typename T>
using CorrelateFn = void (*)(const T*, int64_t, const T*, T*, int64_t, int64_t, int, int, int);
template <typename T>
using FilterFn = void (*)(const T*, int64_t, const T*, int64_t, int64_t, double*, int, int,
                          int);

// The kernels the networks use, compiled for their K, D and S; anything else runs the
// general loops.
#define DW_SPECIALISED(FN, T, k, d, s)                               \
  for (const auto& c : {std::make_tuple(3, 1, 1, &FN<T, 3, 1, 1>),   \
                        std::make_tuple(3, 1, 2, &FN<T, 3, 1, 2>),   \
                        std::make_tuple(3, 2, 1, &FN<T, 3, 2, 1>),   \
                        std::make_tuple(3, 2, 2, &FN<T, 3, 2, 2>),   \
                        std::make_tuple(5, 1, 1, &FN<T, 5, 1, 1>),   \
                        std::make_tuple(5, 1, 2, &FN<T, 5, 1, 2>),   \
                        std::make_tuple(5, 2, 1, &FN<T, 5, 2, 1>),   \
                        std::make_tuple(5, 2, 2, &FN<T, 5, 2, 2>)})  \
    if (std::get<0>(c) == k && std::get<1>(c) == d && std::get<2>(c) == s) \
      return std::get<3>(c);                                         \
  return &FN<T, 0, 0, 0>;

template <typename T>
CorrelateFn<T> pick_correlate(int k, int d, int s) { DW_SPECIALISED(correlate, T, k, d, s) }

template <typename T>
FilterFn<T> pick_filter(int k, int d, int s) { DW_SPECIALISED(correlate_filter, T, k, d, s) }

// Copy an h x w plane into the interior of a buffer `ld` wide, `top` rows and `left`
// columns from its corner; `step` > 1 spreads the pixels `step` apart (the zeros between
// them and around are the buffer's and never written).
template <typename T>
void place(const T* plane, int64_t h, int64_t w, T* buf, int64_t ld, int64_t top, int64_t left,
           int step) {
  for (int64_t i = 0; i < h; ++i) {
    T* dst = buf + (top + i * step) * ld + left;
    const T* row = plane + i * w;
    if (step == 1)
      std::copy(row, row + w, dst);
    else
      for (int64_t j = 0; j < w; ++j) dst[j * step] = row[j];
  }
}

template <typename T>
void forward(const T* x, const T* w, T* y, const Shape& s, int threads) {
  const int64_t ld = s.w + 2 * s.p, rows = s.h + 2 * s.p, kk = s.k * s.k;
  const auto fn = pick_correlate<T>(s.k, s.d, s.s);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<T> buf(rows * ld, T(0));
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < s.n * s.cin; ++nc) {  // pad each input plane once
      const int64_t n = nc / s.cin, c = nc % s.cin;
      place(x + nc * s.h * s.w, s.h, s.w, buf.data(), ld, s.p, s.p, 1);
      for (int64_t o = c; o < s.cout; o += s.cin) {
        T* out = y + (n * s.cout + o) * s.ho * s.wo;
        std::fill(out, out + s.ho * s.wo, T(0));
        fn(buf.data(), ld, w + o * kk, out, s.ho, s.wo, s.k, s.d, s.s);
      }
    }
  }
}

// Both gradients, one input channel c (and the Cout / Cin output channels reading it) per
// thread at a time, so that each dy plane is read once for both and dw needs no reduction
// across threads:
//   dw[o][kh, kw] = sum_{n, oh, ow} dy[n, o, oh, ow] * x_padded[n, c][oh*s + kh*d, ow*s + kw*d]
//   dx[n, c][ih, iw] = sum_{o reading c} sum_{kh, kw} w[o][kh, kw] * dy[n, o][(ih + p - kh*d) / s, ...]
// (terms with a fractional or out-of-range index are zero): the latter is a stride-1
// correlation with the flipped kernel over dy spread `s` apart and shifted by (K-1)d - p.
template <typename T>
void backward(const T* x, const T* w, const T* dy, T* dx, T* dw, const Shape& s, int threads) {
  const int64_t kk = s.k * s.k, ldx = s.w + 2 * s.p, rows_x = s.h + 2 * s.p,
                reach = s.d * (s.k - 1), ldg = s.w + reach, rows_g = s.h + reach,
                shift = reach - s.p, plane = s.h * s.w, out_plane = s.ho * s.wo;
  std::vector<T> flipped(s.cout * kk);
  for (int64_t o = 0; o < s.cout; ++o)
    std::reverse_copy(w + o * kk, w + (o + 1) * kk, flipped.data() + o * kk);
  const auto filter_fn = pick_filter<T>(s.k, s.d, s.s);
  const auto input_fn = pick_correlate<T>(s.k, s.d, 1);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<T> xbuf(rows_x * ldx, T(0)), gbuf(rows_g * ldg, T(0));
    std::vector<double> sums(s.copies() * kk);  // dw summed over the batch in double
#pragma omp for schedule(static)
    for (int64_t c = 0; c < s.cin; ++c) {
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t n = 0; n < s.n; ++n) {
        T* dxp = dx + (n * s.cin + c) * plane;
        std::fill(dxp, dxp + plane, T(0));
        place(x + (n * s.cin + c) * plane, s.h, s.w, xbuf.data(), ldx, s.p, s.p, 1);
        for (int64_t e = 0; e < s.copies(); ++e) {
          const int64_t o = e * s.cin + c;
          const T* g = dy + (n * s.cout + o) * out_plane;
          filter_fn(xbuf.data(), ldx, g, s.ho, s.wo, sums.data() + e * kk, s.k, s.d, s.s);
          place(g, s.ho, s.wo, gbuf.data(), ldg, shift, shift, s.s);
          input_fn(gbuf.data(), ldg, flipped.data() + o * kk, dxp, s.h, s.w, s.k, s.d, 1);
        }
      }
      for (int64_t e = 0; e < s.copies(); ++e)
        for (int64_t i = 0; i < kk; ++i)
          dw[(e * s.cin + c) * kk + i] = static_cast<T>(sums[e * kk + i]);
    }
  }
}

void check_cpu(const paddle::Tensor& t) {
  PD_CHECK(t.is_cpu(), "darts_depthwise_conv2d runs on the CPU only");
}

}  // namespace

std::vector<paddle::Tensor> DepthwiseForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                             int stride, int padding, int dilation,
                                             int threads) {
  check_cpu(x);
  const Shape s = make_shape(x.shape(), w.shape(), stride, padding, dilation);
  auto y = paddle::empty({s.n, s.cout, s.ho, s.wo}, x.dtype(), x.place());
  PD_DISPATCH_FLOATING_TYPES(x.dtype(), "darts_depthwise_conv2d", ([&] {
    forward<data_t>(x.data<data_t>(), w.data<data_t>(), y.data<data_t>(), s, threads);
  }));
  return {y};
}

std::vector<paddle::Tensor> DepthwiseBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                              const paddle::Tensor& dy, int stride,
                                              int padding, int dilation, int threads) {
  check_cpu(x);
  const Shape s = make_shape(x.shape(), w.shape(), stride, padding, dilation);
  auto dx = paddle::empty(x.shape(), x.dtype(), x.place());
  auto dw = paddle::empty(w.shape(), w.dtype(), w.place());
  PD_DISPATCH_FLOATING_TYPES(x.dtype(), "darts_depthwise_conv2d_grad", ([&] {
    backward<data_t>(x.data<data_t>(), w.data<data_t>(), dy.data<data_t>(), dx.data<data_t>(),
                     dw.data<data_t>(), s, threads);
  }));
  return {dx, dw};
}

std::vector<std::vector<int64_t>> DepthwiseInferShape(const std::vector<int64_t>& x,
                                                      const std::vector<int64_t>& w,
                                                      int stride, int padding, int dilation,
                                                      int threads) {
  // static programs leave the batch (and possibly more) unknown: -1 stays -1
  auto size = [&](int64_t in) {
    return in < 0 ? in : (in + 2 * padding - dilation * (w[2] - 1) - 1) / stride + 1;
  };
  return {{x[0], w[0], size(x[2]), size(x[3])}};
}

std::vector<paddle::DataType> DepthwiseInferDtype(const paddle::DataType& x,
                                                  const paddle::DataType& w) {
  return {x};
}

PD_BUILD_OP(darts_depthwise_conv2d)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .Attrs({"stride: int", "padding: int", "dilation: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DepthwiseInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DepthwiseInferDtype));

PD_BUILD_GRAD_OP(darts_depthwise_conv2d)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs({"stride: int", "padding: int", "dilation: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBackward));
