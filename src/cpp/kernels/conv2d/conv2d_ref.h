// Reference Conv2d: direct loops from the definition, accumulating in double. Slow; the
// in-repo oracle for the fast paths and the `algorithm="ref"` choice. Overwrites outputs.
#pragma once

#include "fastconv/params.h"

namespace fastconv {

template <typename T>
void conv2d_forward_ref(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data_ref(const Conv2dParams& p, T* dx, const T* dy, const T* w);
template <typename T>
void conv2d_backward_weight_ref(const Conv2dParams& p, T* dw, const T* dy, const T* x);

}  // namespace fastconv
