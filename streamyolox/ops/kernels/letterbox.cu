// Letterbox (YOLOX preproc) on the GPU: cv2.resize INTER_LINEAR of a uint8 BGR HWC image, emulated in
// cv2's own fixed-point arithmetic (11-bit coefficients, its SIMD vertical pass), placed top-left into a
// CHW float32 canvas padded with 114. One thread per output pixel, all three channels.
// Compile with FMA contraction off (--fmad=false) so the double-precision source coordinate rounds as
// in cv2. No headers and only plain C math, so the same source builds with NVRTC, nvcc and a host C++
// compiler (the CPU test harness).

#define LB_COEF_SCALE 2048.0f  // INTER_RESIZE_COEF_SCALE = 1 << 11
#define LB_PAD 114.0f

// Source taps and fixed-point weights of output index d, as cv2's resize computes them.
__device__ __forceinline__ void lb_taps(int d, double scale, int n_in, int* s0, int* s1, int* w0, int* w1) {
    float f = (float)((d + 0.5) * scale - 0.5);
    int s = (int)floorf(f);
    f -= (float)s;
    if (s < 0) { f = 0.0f; s = 0; }
    if (s >= n_in - 1) { f = 0.0f; s = n_in - 1; }
    *s0 = s;
    *s1 = s + 1 < n_in ? s + 1 : n_in - 1;
    *w0 = (int)rintf((1.0f - f) * LB_COEF_SCALE);
    *w1 = (int)rintf(f * LB_COEF_SCALE);
}

// src: H x W x 3 uint8, rows src_row bytes apart. dst: 3 x dst_h x dst_w float32 (contiguous).
// (rh, rw): resized size; scale_x/y = 1 / (rw / W), 1 / (rh / H) in double, as cv2 computes them.
extern "C" __global__ void letterbox_u8_chw_f32(
    const unsigned char* __restrict__ src, int src_h, int src_w, long long src_row,
    float* __restrict__ dst, int dst_h, int dst_w, int rh, int rw, double scale_x, double scale_y) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    long long plane = (long long)dst_h * dst_w;
    float* out = dst + (long long)y * dst_w + x;
    if (x >= rw || y >= rh) {
        out[0] = LB_PAD; out[plane] = LB_PAD; out[2 * plane] = LB_PAD;
        return;
    }
    int x0, x1, a0, a1, y0, y1, b0, b1;
    lb_taps(x, scale_x, src_w, &x0, &x1, &a0, &a1);
    lb_taps(y, scale_y, src_h, &y0, &y1, &b0, &b1);
    const unsigned char* r0 = src + (long long)y0 * src_row;
    const unsigned char* r1 = src + (long long)y1 * src_row;
    for (int c = 0; c < 3; ++c) {
        int h0 = r0[x0 * 3 + c] * a0 + r0[x1 * 3 + c] * a1;  // horizontal pass, exact in int
        int h1 = r1[x0 * 3 + c] * a0 + r1[x1 * 3 + c] * a1;
        // cv2's VResizeLinear<uchar, int, short>: 16-bit multiply-high of (h >> 4) by the weights.
        int v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2;
        v = v < 0 ? 0 : (v > 255 ? 255 : v);
        out[c * plane] = (float)v;
    }
}
