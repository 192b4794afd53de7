// Transaction features, the quantile map of detector inputs, and the IP range lookup.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <random>

#include "fraudcore/error.hpp"
#include "fraudcore/features.hpp"
#include "fraudcore/ip_ranges.hpp"
#include "fraudcore/parallel.hpp"
#include "fraudcore/quantile_map.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

namespace {
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using FlagArray = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>;

// A column of n values, or null for None.
template <class T, class A>
const T* column(const std::optional<A>& a, Index n, const char* name) {
  if (!a) return nullptr;
  FRAUDCORE_CHECK(a->ndim() == 1 && a->shape(0) == n,
                  "column " << name << " must be 1-D with " << n << " values");
  return a->data();
}

// The kernel's view of the columns (borrowed: the arrays must outlive it).
TransactionColumns columns_of(const std::optional<Int64Array>& entity, const Int64Array& time_ns,
                              const DoubleArray& amount, const std::optional<DoubleArray>& quantity,
                              const std::optional<Int64Array>& invoice, const std::optional<Int64Array>& country,
                              const std::optional<Int64Array>& device, const std::optional<Int64Array>& ip,
                              const std::optional<Int64Array>& signup_ns,
                              const std::optional<FlagArray>& has_signup_time) {
  FRAUDCORE_CHECK(time_ns.ndim() == 1, "timestamps must be 1-D");
  TransactionColumns cols;
  cols.n = time_ns.shape(0);
  cols.time_ns = time_ns.data();
  cols.amount = column<double>(std::optional<DoubleArray>(amount), cols.n, "amount");
  cols.entity = column<std::int64_t>(entity, cols.n, "entity");
  cols.quantity = column<double>(quantity, cols.n, "quantity");
  cols.invoice = column<std::int64_t>(invoice, cols.n, "invoice");
  cols.country = column<std::int64_t>(country, cols.n, "country");
  cols.device = column<std::int64_t>(device, cols.n, "device");
  cols.ip = column<std::int64_t>(ip, cols.n, "ip");
  cols.signup_ns = column<std::int64_t>(signup_ns, cols.n, "signup_time");
  cols.has_signup_time = column<std::uint8_t>(has_signup_time, cols.n, "has_signup_time");
  return cols;
}

// 64-bit hash of a byte string (multiply-mix over 8-byte words), seeded per
// call so that crafted device or IP strings cannot collide on purpose.
std::uint64_t hash_bytes(const char* data, std::size_t n, std::uint64_t seed) {
  std::uint64_t h = seed ^ (n * 0xC2B2AE3D27D4EB4FULL);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    h = (h ^ (w * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, data + i, n - i);
  h = (h ^ (tail * 0x94D049BB133111EBULL)) * 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

// Codes of one column of Python str objects, first-occurrence order, -1 for
// None / float NaN. Safe on a worker thread while the calling thread holds
// the GIL: it reads only fields CPython never changes after creating an
// object (type, the compact-ASCII flag, length, the inline characters, a
// float's value) and touches no reference count. Returns false when a value
// is anything else (a non-ASCII or non-compact str, another type): the
// caller then falls back.
bool ascii_codes(PyObject* const* objects, py::ssize_t n, py::ssize_t stride, std::int64_t* out,
                 std::vector<py::ssize_t>& first_rows, std::uint64_t seed) {
  struct Slot {
    std::uint64_t hash = 0;
    const char* data = nullptr;
    std::size_t size = 0;
    std::int64_t code = -1;
  };
  std::vector<Slot> table(16);
  const auto insert = [](std::vector<Slot>& t, const Slot& slot) {
    std::size_t j = slot.hash & (t.size() - 1);
    while (t[j].code >= 0) j = (j + 1) & (t.size() - 1);
    t[j] = slot;
  };
  for (py::ssize_t i = 0; i < n; ++i) {
    PyObject* v = objects[i * stride];
    if (v == Py_None || (Py_TYPE(v) == &PyFloat_Type && std::isnan(PyFloat_AS_DOUBLE(v)))) {
      out[i] = -1;
      continue;
    }
    if (Py_TYPE(v) != &PyUnicode_Type || !PyUnicode_IS_COMPACT_ASCII(v)) return false;
    const char* data = static_cast<const char*>(PyUnicode_DATA(v));
    const auto size = static_cast<std::size_t>(PyUnicode_GET_LENGTH(v));
    const std::uint64_t h = hash_bytes(data, size, seed);
    std::size_t at = h & (table.size() - 1);
    while (table[at].code >= 0 &&
           !(table[at].hash == h && table[at].size == size && std::memcmp(table[at].data, data, size) == 0)) {
      at = (at + 1) & (table.size() - 1);
    }
    if (table[at].code >= 0) {
      out[i] = table[at].code;
      continue;
    }
    const Slot slot{h, data, size, static_cast<std::int64_t>(first_rows.size())};
    out[i] = slot.code;
    first_rows.push_back(i);
    if (2 * first_rows.size() > table.size()) {  // keep the load under one half
      std::vector<Slot> bigger(table.size() * 2);
      for (const Slot& old : table) {
        if (old.code >= 0) insert(bigger, old);
      }
      table.swap(bigger);
    }
    insert(table, slot);
  }
  return true;
}

// pd.factorize for several object columns of str at once, the columns in
// parallel: a list with, per column, (codes, uniques) or None when a value
// is not an ASCII str or missing (the caller then uses pandas).
py::list factorize_strings(const std::vector<py::array>& columns, int n_threads) {
  struct Column {
    PyObject* const* objects;
    py::ssize_t n, stride;
    py::array_t<std::int64_t> codes;
    std::int64_t* out;
    std::vector<py::ssize_t> first_rows;
    bool ok = false;
  };
  std::vector<Column> work;
  for (const py::array& values : columns) {
    FRAUDCORE_CHECK(values.ndim() == 1 && values.dtype().kind() == 'O', "expected 1-D object arrays");
    Column c{static_cast<PyObject* const*>(values.data()), values.shape(0),
             values.strides(0) / static_cast<py::ssize_t>(sizeof(PyObject*)),
             py::array_t<std::int64_t>(values.shape(0)), nullptr, {}, false};
    c.out = c.codes.mutable_data();
    work.push_back(std::move(c));
  }
  // The calling thread keeps the GIL, so no Python code runs anywhere while
  // the OpenMP threads read: no other thread can replace (and free) an
  // object in the arrays meanwhile. The threads only read fields CPython
  // never changes after creating an object.
  const std::uint64_t seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  parallel_for(static_cast<Index>(work.size()), n_threads, [&](Index k) {
    Column& c = work[static_cast<std::size_t>(k)];
    c.ok = ascii_codes(c.objects, c.n, c.stride, c.out, c.first_rows, seed);
  });
  py::list result;
  for (Column& c : work) {
    if (!c.ok) {
      result.append(py::none());
      continue;
    }
    py::list uniques;
    for (py::ssize_t row : c.first_rows) uniques.append(py::reinterpret_borrow<py::object>(c.objects[row * c.stride]));
    result.append(py::make_tuple(c.codes, uniques));
  }
  return result;
}

py::array_t<double> new_matrix(Index rows, Index cols) {
  return py::array_t<double>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

std::vector<double> to_vector(const DoubleArray& a) {
  FRAUDCORE_CHECK(a.ndim() == 1, "expected a 1-D array, got " << a.ndim() << " dimension(s)");
  return std::vector<double>(a.data(), a.data() + a.shape(0));
}
}  // namespace

void bind_features(py::module_& m) {
  m.def("factorize_strings", &factorize_strings, py::arg("columns"), py::arg("n_threads"),
        "Per object array of ASCII str: (codes, uniques), None/NaN -> -1; None for a column with other values.");
  py::class_<FeatureConfig>(m, "FeatureConfig", "Settings of the transaction feature kernel.")
      .def(py::init<>())
      .def_readwrite("windows_ns", &FeatureConfig::windows_ns)
      .def_readwrite("night_start_hour", &FeatureConfig::night_start_hour)
      .def_readwrite("night_end_hour", &FeatureConfig::night_end_hour)
      .def_readwrite("spike_sigmas", &FeatureConfig::spike_sigmas)
      .def_readwrite("has_quantity", &FeatureConfig::has_quantity)
      .def_readwrite("has_invoice", &FeatureConfig::has_invoice)
      .def_readwrite("has_country", &FeatureConfig::has_country)
      .def_readwrite("has_device", &FeatureConfig::has_device)
      .def_readwrite("has_ip", &FeatureConfig::has_ip)
      .def_readwrite("has_signup", &FeatureConfig::has_signup)
      .def("validate", &FeatureConfig::validate)
      .def("feature_names", [](const FeatureConfig& c) { return feature_names(c); });

  m.def(
      "build_features",
      [](const FeatureConfig& config, const std::optional<Int64Array>& entity, const Int64Array& time_ns,
         const DoubleArray& amount, const std::optional<DoubleArray>& quantity,
         const std::optional<Int64Array>& invoice, const std::optional<Int64Array>& country,
         const std::optional<Int64Array>& device, const std::optional<Int64Array>& ip,
         const std::optional<Int64Array>& signup_ns, const std::optional<FlagArray>& has_signup_time,
         int n_threads) {
        const TransactionColumns cols = columns_of(entity, time_ns, amount, quantity, invoice, country, device, ip,
                                                   signup_ns, has_signup_time);
        auto out = new_matrix(cols.n, static_cast<Index>(feature_names(config).size()));
        double* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          build_features(config, cols, dst, n_threads);
        }
        return out;
      },
      py::arg("config"), py::arg("entity"), py::arg("time_ns"), py::arg("amount"), py::arg("quantity"),
      py::arg("invoice"), py::arg("country"), py::arg("device"), py::arg("ip"), py::arg("signup_ns"),
      py::arg("has_signup_time"), py::arg("n_threads"),
      "Point-in-time features of every row (n x len(config.feature_names())).");

  m.def(
      "quantile_map",
      [](const DoubleArray& X, const DoubleArray& grid, int n_threads) {
        FRAUDCORE_CHECK(X.ndim() == 2 && grid.ndim() == 2 && grid.shape(1) == X.shape(1),
                        "quantile_map needs X (n x d) and a grid (m x d) with the same d");
        auto out = new_matrix(X.shape(0), X.shape(1));
        double* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          quantile_map(X.data(), X.shape(0), X.shape(1), grid.data(), grid.shape(0), dst, n_threads);
        }
        return out;
      },
      py::arg("X"), py::arg("grid"), py::arg("n_threads"),
      "Each value's mid-rank in its column of the ascending quantile grid, in [0, 1].");

  py::class_<FeatureState>(m, "FeatureStateModel", "Streaming feature state; see fraudcore.FeatureState.")
      .def(py::init<FeatureConfig>(), py::arg("config"))
      .def_property_readonly("names", &FeatureState::names)
      // Reads wait for a running update_many without holding the GIL.
      .def_property_readonly("n_entities", py::cpp_function(&FeatureState::n_entities,
                                                            py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("config", &FeatureState::config)
      .def(
          "update",
          [](FeatureState& self, const py::list& keys, std::int64_t entity, std::int64_t time_ns, double amount,
             double quantity, std::int64_t invoice, std::int64_t country, std::int64_t device, std::int64_t ip,
             std::int64_t signup_ns, bool has_signup_time) {
            FRAUDCORE_CHECK(static_cast<Index>(keys.size()) == self.n_features(),
                            "keys must hold the " << self.n_features() << " feature names");
            Transaction t;
            t.entity = entity;
            t.time_ns = time_ns;
            t.amount = amount;
            t.quantity = quantity;
            t.invoice = invoice;
            t.country = country;
            t.device = device;
            t.ip = ip;
            t.signup_ns = signup_ns;
            t.has_signup_time = has_signup_time;
            thread_local std::vector<double> values;
            values.resize(static_cast<std::size_t>(self.n_features()));
            self.update(t, values.data());
            py::dict out;  // {keys[i]: value i}: what the Python caller returns
            for (std::size_t i = 0; i < values.size(); ++i) out[keys[i]] = py::float_(values[i]);
            return out;
          },
          py::arg("keys"), py::arg("entity"), py::arg("time_ns"), py::arg("amount"), py::arg("quantity"),
          py::arg("invoice"), py::arg("country"), py::arg("device"), py::arg("ip"), py::arg("signup_ns"),
          py::arg("has_signup_time"),
          "Features of one transaction as {keys[i]: value}, then add it to the state.")
      .def(
          "update_many",
          [](FeatureState& self, const std::optional<Int64Array>& entity, const Int64Array& time_ns,
             const DoubleArray& amount, const std::optional<DoubleArray>& quantity,
             const std::optional<Int64Array>& invoice, const std::optional<Int64Array>& country,
             const std::optional<Int64Array>& device, const std::optional<Int64Array>& ip,
             const std::optional<Int64Array>& signup_ns, const std::optional<FlagArray>& has_signup_time) {
            const TransactionColumns cols = columns_of(entity, time_ns, amount, quantity, invoice, country, device,
                                                       ip, signup_ns, has_signup_time);
            auto out = new_matrix(cols.n, self.n_features());
            double* dst = out.mutable_data();
            {
              // The arrays stay alive (held by this call's arguments); the
              // state's own lock keeps concurrent callers out.
              py::gil_scoped_release release;
              self.update_many(cols, dst);
            }
            return out;
          },
          py::arg("entity"), py::arg("time_ns"), py::arg("amount"), py::arg("quantity"), py::arg("invoice"),
          py::arg("country"), py::arg("device"), py::arg("ip"), py::arg("signup_ns"), py::arg("has_signup_time"),
          "update() for each row in order; a rejected batch leaves the state unchanged.")
      .def("serialize",
           [](const FeatureState& self) {
             std::string bytes;
             {
               py::gil_scoped_release release;
               bytes = self.serialize();
             }
             return py::bytes(bytes);
           })
      .def_static("deserialize", [](const py::bytes& data) { return FeatureState::deserialize(std::string(data)); });

  py::class_<IpRangeTable>(m, "IpRangeTable", "Sorted, non-overlapping [lower, upper] IP ranges.")
      .def(py::init([](const DoubleArray& lower, const DoubleArray& upper) {
             return IpRangeTable(to_vector(lower), to_vector(upper));
           }),
           py::arg("lower"), py::arg("upper"))
      .def("__len__", &IpRangeTable::size)
      .def(
          "find_all",
          [](const IpRangeTable& self, const DoubleArray& ips, int n_threads) {
            FRAUDCORE_CHECK(ips.ndim() == 1, "ips must be a 1-D array");
            py::array_t<std::int64_t> out(ips.shape(0));
            const double* src = ips.data();
            std::int64_t* dst = out.mutable_data();
            const Index n = ips.shape(0);
            {
              py::gil_scoped_release release;
              self.find_all(src, n, dst, n_threads);
            }
            return out;
          },
          py::arg("ips"), py::arg("n_threads"), "Range index of each address, -1 where none holds it.");
}

}  // namespace fraudcore::bindings
