#include <pybind11/pybind11.h>

#include "fraudcore/serialize.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

void bind_serialize(py::module_& m) {
  m.attr("FORMAT_VERSION") = kFormatVersion;
  m.def(
      "pack_envelope",
      [](std::string_view kind, py::bytes metadata, py::bytes body) {
        return py::bytes(pack_envelope(kind, std::string_view(metadata), std::string_view(body)));
      },
      py::arg("kind"), py::arg("metadata"), py::arg("body"),
      "Wrap a model body and its JSON metadata in fraudcore's checksummed binary envelope.");
  m.def(
      "unpack_envelope",
      [](py::bytes data) {
        Envelope env = unpack_envelope(std::string_view(data));
        return py::make_tuple(env.format_version, env.kind, py::bytes(env.metadata),
                              py::bytes(env.body));
      },
      py::arg("data"),
      "Validate an envelope; return (format_version, kind, metadata, body). "
      "Raises ModelFormatError when it is truncated, corrupted or newer than this fraudcore.");
  m.def(
      "crc32", [](py::bytes data) { return crc32(std::string_view(data)); }, py::arg("data"),
      "CRC-32 (IEEE, as zlib.crc32) of data.");
}

}  // namespace fraudcore::bindings
