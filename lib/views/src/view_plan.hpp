// The compiled form of a ViewDefinition, shared by view_compile.cpp (which
// builds it) and view_eval.cpp (which walks it). Private to lib/views.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "headachemd/views/fhirpath.hpp"
#include "headachemd/views/view.hpp"

namespace headachemd::views {
namespace detail {

// ViewDefinition.select: at most one of forEach, forEachOrNull and repeat.
enum class iteration { none, for_each, for_each_or_null, repeat };

struct expression {
    std::string json_path;  // where the expression sits in the definition, for errors
    std::unique_ptr<node> ast;
};

struct column_plan {
    expression path;
    bool collection = false;
    // The path is getResourceKey()/getReferenceKey() under privacy::none:
    // its "Patient/<id>" values become patient_keys (eval_options).
    bool patient_key = false;
    // Compiled under a privacy rule: a complex element (a JSON object)
    // is an error rather than a cell, since it may hold an identity.
    bool primitives_only = false;
};

struct select_plan {
    iteration kind = iteration::none;
    expression iterate;              // forEach / forEachOrNull
    std::vector<expression> repeat;  // repeat's paths, applied recursively
    std::vector<column_plan> columns;
    std::vector<select_plan> selects;
    std::vector<select_plan> union_all;
    std::size_t width = 0;  // output columns of this select, nested ones included
};

// The privacy walk (view_privacy.cpp): the first refusal, if any. Under
// privacy::none it marks the key columns (column_plan::patient_key).
std::optional<view_error> check_privacy(
    const std::string& resource, const std::vector<std::pair<std::string, std::unique_ptr<node>>>& where,
    select_plan& root_plan, privacy rule);

}  // namespace detail

// The compiler and evaluator reach the view's private parts through this.
struct view_access {
    static std::string& resource(view& v) { return v.resource_; }
    static std::string& name(view& v) { return v.name_; }
    static std::vector<column_info>& columns(view& v) { return v.columns_; }
    static constant_map& constants(view& v) { return v.constants_; }
    static const constant_map& constants(const view& v) { return v.constants_; }
    static std::vector<std::pair<std::string, std::unique_ptr<node>>>& where(view& v) { return v.where_; }
    static const std::vector<std::pair<std::string, std::unique_ptr<node>>>& where(const view& v) {
        return v.where_;
    }
    static std::unique_ptr<detail::select_plan>& root(view& v) { return v.root_; }
    static const detail::select_plan& root(const view& v) { return *v.root_; }
};

}  // namespace headachemd::views
