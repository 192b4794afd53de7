// Shared numeric types of the fraudcore core.
#pragma once

#include <cstdint>

#include <Eigen/Core>

namespace fraudcore {

using Index = std::int64_t;

template <class T>
using RowMajorMatrix =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using DynamicStride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;

/// Read-only view of an n x d matrix in any memory order, without copying:
/// element (i, j) lives at data[i * outerStride() + j * innerStride()], so a
/// C-ordered array has strides (d, 1) and a Fortran-ordered one (1, n).
template <class T>
using ConstMatrixView =
    Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, DynamicStride>;

/// View over a C-ordered (row-major, contiguous) buffer.
template <class T>
ConstMatrixView<T> row_major_view(const T* data, Index rows, Index cols) {
  return ConstMatrixView<T>(data, rows, cols, DynamicStride(cols, 1));
}

/// View over a Fortran-ordered (column-major, contiguous) buffer.
template <class T>
ConstMatrixView<T> col_major_view(const T* data, Index rows, Index cols) {
  return ConstMatrixView<T>(data, rows, cols, DynamicStride(1, rows));
}

}  // namespace fraudcore
