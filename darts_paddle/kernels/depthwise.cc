// Depthwise 2-D convolution (NCHW) on the CPU, forward and both gradients, as a Paddle
// custom op (darts_paddle/kernels/depthwise.py loads it; docs/paddle.md section 11).
//
// x [N, Cin, H, W] and a list of weights w_g [C_g, 1, K_g, K_g], one dilation D_g each:
// the weights stack to Cout = sum C_g output channels, and output channel o reads input
// channel o % Cin with its weight's kernel.  One weight with Cout = Cin is the plain
// depthwise conv; Cout = E * Cin gives E edge-major copies of the input, as the search
// cell's fused edges need, without tiling it; several weights run the four conv primitives
// of a search cell's state (3x3 and 5x5, dilation 1 and 2) as one op.  Padding is "same":
// D_g * (K_g - 1) / 2 (odd K), so every weight gives Ho = (H - 1) / s + 1 rows.
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

// One weight: output channels first .. first + count - 1, kernel k, dilation d, padding p.
struct Group {
  int64_t first, count;
  int k, d, p;
  int64_t taps() const { return static_cast<int64_t>(k) * k; }
};

struct Shape {
  int64_t n, cin, cout, h, w, ho, wo;
  int s, pmax;  // stride; the largest padding (planes are padded once, for every weight)
  std::vector<Group> groups;
  const Group& group_of(int64_t o) const {  // a handful of weights: a scan is enough
    size_t g = 0;
    while (o >= groups[g].first + groups[g].count) ++g;
    return groups[g];
  }
};

Shape make_shape(const std::vector<int64_t>& x, const std::vector<std::vector<int64_t>>& ws,
                 int stride, const std::vector<int>& dilations) {
  PD_CHECK(x.size() == 4, "depthwise conv: x must be 4-D (NCHW)");
  PD_CHECK(!ws.empty() && ws.size() == dilations.size(),
           "depthwise conv: one dilation per weight");
  PD_CHECK(stride >= 1, "depthwise conv: needs stride >= 1");
  Shape s{x[0], x[1], 0, x[2], x[3], (x[2] - 1) / stride + 1, (x[3] - 1) / stride + 1,
          stride, 0, {}};
  for (size_t g = 0; g < ws.size(); ++g) {
    const auto& w = ws[g];
    PD_CHECK(w.size() == 4 && w[1] == 1 && w[2] == w[3] && w[2] % 2 == 1,
             "depthwise conv: every weight must be [C, 1, K, K] with an odd K");
    PD_CHECK(dilations[g] >= 1, "depthwise conv: needs dilation >= 1");
    const int k = static_cast<int>(w[2]), d = dilations[g], p = d * (k / 2);
    s.groups.push_back({s.cout, w[0], k, d, p});
    s.cout += w[0];
    s.pmax = std::max(s.pmax, p);
  }
  PD_CHECK(s.h > 0 && s.w > 0, "depthwise conv: empty input");
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
void forward(const T* x, const std::vector<const T*>& w, T* y, const Shape& s, int threads) {
  const int64_t ld = s.w + 2 * s.pmax, rows = s.h + 2 * s.pmax;
  std::vector<CorrelateFn<T>> fns;
  for (const auto& g : s.groups) fns.push_back(pick_correlate<T>(g.k, g.d, s.s));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<T> buf(rows * ld, T(0));
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < s.n * s.cin; ++nc) {  // pad each input plane once
      const int64_t n = nc / s.cin, c = nc % s.cin;
      place(x + nc * s.h * s.w, s.h, s.w, buf.data(), ld, s.pmax, s.pmax, 1);
      for (int64_t o = c; o < s.cout; o += s.cin) {
        const Group& g = s.group_of(o);
        const size_t i = &g - s.groups.data();
        T* out = y + (n * s.cout + o) * s.ho * s.wo;
        std::fill(out, out + s.ho * s.wo, T(0));
        const int64_t corner = (s.pmax - g.p) * (ld + 1);  // this weight's padding
        fns[i](buf.data() + corner, ld, w[i] + (o - g.first) * g.taps(), out, s.ho, s.wo,
               g.k, g.d, s.s);
      }
    }
  }
}

// Both gradients, one input channel c (and the output channels o = c, c + Cin, ... reading
// it) per thread at a time, so that each dy plane is read once for both and dw needs no
// reduction across threads:
//   dw[o][kh, kw] = sum_{n, oh, ow} dy[n, o, oh, ow] * x_padded[n, c][oh*s + kh*d, ow*s + kw*d]
//   dx[n, c][ih, iw] = sum_{o reading c} sum_{kh, kw} w[o][kh, kw] * dy[n, o][(ih + p - kh*d) / s, ...]
// (terms with a fractional or out-of-range index are zero): the latter is a stride-1
// correlation with the flipped kernel over dy spread `s` apart and shifted by (K-1)d - p.
template <typename T>
void backward(const T* x, const std::vector<const T*>& w, const T* dy, T* dx,
              const std::vector<T*>& dw, const Shape& s, int threads) {
  const int64_t ldx = s.w + 2 * s.pmax, rows_x = s.h + 2 * s.pmax, plane = s.h * s.w,
                out_plane = s.ho * s.wo, readers = (s.cout + s.cin - 1) / s.cin;
  int64_t most_taps = 0;
  std::vector<std::vector<T>> flipped;
  std::vector<FilterFn<T>> filter_fns;
  std::vector<CorrelateFn<T>> input_fns;
  for (size_t i = 0; i < s.groups.size(); ++i) {
    const Group& g = s.groups[i];
    most_taps = std::max(most_taps, g.taps());
    flipped.emplace_back(g.count * g.taps());
    for (int64_t o = 0; o < g.count; ++o)
      std::reverse_copy(w[i] + o * g.taps(), w[i] + (o + 1) * g.taps(),
                        flipped[i].data() + o * g.taps());
    filter_fns.push_back(pick_filter<T>(g.k, g.d, s.s));
    input_fns.push_back(pick_correlate<T>(g.k, g.d, 1));
  }
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<T> xbuf(rows_x * ldx, T(0));
    std::vector<std::vector<T>> gbufs;  // per weight: its reach sets the border
    for (const auto& g : s.groups) {
      const int64_t reach = g.d * (g.k - 1);
      gbufs.emplace_back((s.h + reach) * (s.w + reach), T(0));
    }
    std::vector<double> sums(readers * most_taps);  // dw summed over the batch in double
#pragma omp for schedule(static)
    for (int64_t c = 0; c < s.cin; ++c) {
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t n = 0; n < s.n; ++n) {
        T* dxp = dx + (n * s.cin + c) * plane;
        std::fill(dxp, dxp + plane, T(0));
        place(x + (n * s.cin + c) * plane, s.h, s.w, xbuf.data(), ldx, s.pmax, s.pmax, 1);
        for (int64_t o = c, r = 0; o < s.cout; o += s.cin, ++r) {
          const Group& g = s.group_of(o);
          const size_t i = &g - s.groups.data();
          const int64_t reach = g.d * (g.k - 1), ldg = s.w + reach, shift = reach - g.p;
          const T* grad = dy + (n * s.cout + o) * out_plane;
          filter_fns[i](xbuf.data() + (s.pmax - g.p) * (ldx + 1), ldx, grad, s.ho, s.wo,
                        sums.data() + r * most_taps, g.k, g.d, s.s);
          place(grad, s.ho, s.wo, gbufs[i].data(), ldg, shift, shift, s.s);
          input_fns[i](gbufs[i].data(), ldg, flipped[i].data() + (o - g.first) * g.taps(),
                       dxp, s.h, s.w, g.k, g.d, 1);
        }
      }
      for (int64_t o = c, r = 0; o < s.cout; o += s.cin, ++r) {
        const Group& g = s.group_of(o);
        T* out = dw[&g - s.groups.data()] + (o - g.first) * g.taps();
        for (int64_t i = 0; i < g.taps(); ++i) out[i] = static_cast<T>(sums[r * most_taps + i]);
      }
    }
  }
}

void check_cpu(const paddle::Tensor& t) {
  PD_CHECK(t.is_cpu(), "darts_depthwise_conv2d runs on the CPU only");
}

std::vector<std::vector<int64_t>> shapes(const std::vector<paddle::Tensor>& ws) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& w : ws) out.push_back(w.shape());
  return out;
}

template <typename T>
std::vector<const T*> data(const std::vector<paddle::Tensor>& ws) {
  std::vector<const T*> out;
  for (const auto& w : ws) out.push_back(w.data<T>());
  return out;
}

}  // namespace

// The op's one input list is [x, w_0, w_1, ...]: Paddle's executor lets a custom op with
// a list output have no other output, and the gradient op returns dx and every dw.
std::vector<paddle::Tensor> DepthwiseForward(const std::vector<paddle::Tensor>& xw, int stride,
                                             const std::vector<int>& dilations, int threads) {
  const paddle::Tensor& x = xw[0];
  const std::vector<paddle::Tensor> w(xw.begin() + 1, xw.end());
  check_cpu(x);
  const Shape s = make_shape(x.shape(), shapes(w), stride, dilations);
  auto y = paddle::empty({s.n, s.cout, s.ho, s.wo}, x.dtype(), x.place());
  PD_DISPATCH_FLOATING_TYPES(x.dtype(), "darts_depthwise_conv2d", ([&] {
    forward<data_t>(x.data<data_t>(), data<data_t>(w), y.data<data_t>(), s, threads);
  }));
  return {y};
}

// -> [dx, dw_0, dw_1, ...]
std::vector<paddle::Tensor> DepthwiseBackward(const std::vector<paddle::Tensor>& xw,
                                              const paddle::Tensor& dy, int stride,
                                              const std::vector<int>& dilations, int threads) {
  const paddle::Tensor& x = xw[0];
  const std::vector<paddle::Tensor> w(xw.begin() + 1, xw.end());
  check_cpu(x);
  const Shape s = make_shape(x.shape(), shapes(w), stride, dilations);
  std::vector<paddle::Tensor> grads;
  for (const auto& t : xw) grads.push_back(paddle::empty(t.shape(), t.dtype(), t.place()));
  PD_DISPATCH_FLOATING_TYPES(x.dtype(), "darts_depthwise_conv2d_grad", ([&] {
    std::vector<data_t*> dw;
    for (size_t i = 1; i < grads.size(); ++i) dw.push_back(grads[i].data<data_t>());
    backward<data_t>(x.data<data_t>(), data<data_t>(w), dy.data<data_t>(),
                     grads[0].data<data_t>(), dw, s, threads);
  }));
  return grads;
}

std::vector<std::vector<int64_t>> DepthwiseInferShape(
    const std::vector<std::vector<int64_t>>& xw, int stride, const std::vector<int>& dilations,
    int threads) {
  // static programs leave the batch (and possibly more) unknown: -1 stays -1
  auto size = [&](int64_t in) { return in < 0 ? in : (in - 1) / stride + 1; };
  int64_t cout = 0;
  for (size_t i = 1; i < xw.size(); ++i) cout += xw[i][0];
  return {{xw[0][0], cout, size(xw[0][2]), size(xw[0][3])}};
}

std::vector<paddle::DataType> DepthwiseInferDtype(const std::vector<paddle::DataType>& xw) {
  return {xw[0]};
}

PD_BUILD_OP(darts_depthwise_conv2d)
    .Inputs({paddle::Vec("XW")})
    .Outputs({"Out"})
    .Attrs({"stride: int", "dilations: std::vector<int>", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DepthwiseInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DepthwiseInferDtype));

PD_BUILD_GRAD_OP(darts_depthwise_conv2d)
    .Inputs({paddle::Vec("XW"), paddle::Grad("Out")})
    .Outputs({paddle::Grad(paddle::Vec("XW"))})
    .Attrs({"stride: int", "dilations: std::vector<int>", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBackward));
