// NumPy arrays as core matrix views (bindings only; the core never sees
// pybind11). A view borrows the array's memory: it must not outlive it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "fraudcore/error.hpp"
#include "fraudcore/types.hpp"

namespace fraudcore::bindings {

namespace py = pybind11;

template <class T>
ConstMatrixView<T> matrix_view(const py::array& X) {
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  const py::ssize_t row_stride = X.strides(0), col_stride = X.strides(1);
  FRAUDCORE_CHECK(row_stride >= 0 && col_stride >= 0 && row_stride % item == 0 &&
                      col_stride % item == 0,
                  "X must have non-negative strides that are multiples of its item size; "
                  "pass np.ascontiguousarray(X)");
  return ConstMatrixView<T>(static_cast<const T*>(X.data()), X.shape(0), X.shape(1),
                            DynamicStride(row_stride / item, col_stride / item));
}

/// Call f(view) with a float32 or float64 view of the 2-D array X, with the
/// GIL released during f. Throws std::invalid_argument for other shapes or
/// dtypes (the Python layer converts those before calling).
template <class F>
void with_matrix(const py::array& X, F&& f) {
  FRAUDCORE_CHECK(X.ndim() == 2, "X must be a 2-D array, got " << X.ndim() << " dimension(s)");
  if (py::isinstance<py::array_t<double>>(X)) {
    const auto view = matrix_view<double>(X);
    py::gil_scoped_release release;
    f(view);
  } else if (py::isinstance<py::array_t<float>>(X)) {
    const auto view = matrix_view<float>(X);
    py::gil_scoped_release release;
    f(view);
  } else {
    throw std::invalid_argument("X must hold float32 or float64 values, got dtype " +
                                std::string(py::str(X.dtype())));
  }
}

/// A new float64 array with one value per row of X, filled by
/// f(view, out) with the GIL released.
template <class F>
py::array_t<double> per_row(const py::array& X, F&& f) {
  py::array_t<double> out(X.ndim() == 2 ? X.shape(0) : 0);
  double* dst = out.mutable_data();
  with_matrix(X, [&](const auto& view) { f(view, dst); });
  return out;
}

}  // namespace fraudcore::bindings
