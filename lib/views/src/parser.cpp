// Recursive-descent parser for the FHIRPath subset (see fhirpath.hpp).
// Precedence, loosest first, follows the FHIRPath grammar (N1, §"Operator
// precedence"): implies; or xor; and; in contains; = != ~ !~; < <= > >=;
// |; is as; + - &; * / div mod; unary minus; invocation and indexer.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>
#include <utility>

#include "fhirpath_temporal.hpp"
#include "headachemd/views/fhirpath.hpp"

namespace headachemd::views {
namespace {

enum class tok { end, identifier, string, number, date, constant, symbol, this_ref };

struct token {
    tok kind = tok::end;
    std::string text;  // identifier/string/number/date/constant contents, or the symbol
    std::size_t offset = 0;
    temporal_kind temporal = temporal_kind::infer;  // of a date token
};

// Thrown inside the parser only and turned into parse_error at the API
// boundary: a bad expression is an expected failure for the caller.
struct failure {
    std::size_t offset;
    std::string message;
};

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool ident_char(char c) { return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

class lexer {
public:
    explicit lexer(std::string_view s) : s_(s) {}

    std::vector<token> run() {
        std::vector<token> out;
        for (;;) {
            skip_space();
            token t;
            t.offset = i_;
            if (i_ >= s_.size()) {
                out.push_back(t);
                return out;
            }
            char c = s_[i_];
            if (c == '\'') {
                t.kind = tok::string;
                t.text = quoted('\'');
            } else if (c == '`') {
                // Delimited identifiers let paths name elements that clash
                // with keywords (`div`) or contain odd characters.
                t.kind = tok::identifier;
                t.text = quoted('`');
            } else if (digit(c)) {
                t.kind = tok::number;
                t.text = number();
            } else if (c == '@') {
                ++i_;
                t.kind = tok::date;
                t.text = temporal_literal(t.offset, t.temporal);
            } else if (c == '%') {
                ++i_;
                t.kind = tok::constant;
                if (i_ < s_.size() && s_[i_] == '`') {
                    t.text = quoted('`');
                } else {
                    std::size_t b = i_;
                    while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
                    if (i_ == b) throw failure{t.offset, "expected a constant name after '%'"};
                    t.text = std::string(s_.substr(b, i_ - b));
                }
            } else if (c == '$') {
                std::size_t b = ++i_;
                while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
                if (s_.substr(b, i_ - b) != "this") throw failure{t.offset, "unsupported variable"};
                t.kind = tok::this_ref;
            } else if (ident_start(c)) {
                t.kind = tok::identifier;
                std::size_t b = i_;
                while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
                t.text = std::string(s_.substr(b, i_ - b));
            } else {
                t.kind = tok::symbol;
                static constexpr std::string_view two[] = {"<=", ">=", "!=", "!~"};
                bool found = false;
                for (auto op : two) {
                    if (s_.substr(i_, 2) == op) {
                        t.text = std::string(op);
                        i_ += 2;
                        found = true;
                        break;
                    }
                }
                if (!found) {
                    if (std::string_view("().,[]{}=<>+-*/&|~").find(c) == std::string_view::npos) {
                        throw failure{i_, std::string("unexpected character '") + c + "'"};
                    }
                    t.text = std::string(1, c);
                    ++i_;
                }
            }
            out.push_back(std::move(t));
        }
    }

private:
    // The text after '@'. A '.' belongs to the literal only before a digit
    // (a fraction of a second), so `@2020-01-01.lowBoundary()` invokes. The
    // literal must be a real date, dateTime or time (FHIRPath N1 §"Date",
    // §"DateTime", §"Time"): @2020-13-45 is a parse error, not a value.
    std::string temporal_literal(std::size_t at, temporal_kind& kind) {
        std::size_t b = i_;
        while (i_ < s_.size() && (ident_char(s_[i_]) || s_[i_] == '-' || s_[i_] == ':' || s_[i_] == '+' ||
                                  (s_[i_] == '.' && i_ + 1 < s_.size() && digit(s_[i_ + 1])))) {
            ++i_;
        }
        if (i_ == b) throw failure{at, "empty date/time literal"};
        std::string text(s_.substr(b, i_ - b));
        kind = temporal_kind::date;
        if (text[0] == 'T') {
            // @T12:00 is a time; its value is written without the 'T', as FHIR writes a time.
            text.erase(0, 1);
            kind = temporal_kind::time;
        } else if (text.find('T') != std::string::npos) {
            kind = temporal_kind::date_time;
        }
        if (text.empty() || !detail::parse_temporal(text, kind))
            throw failure{at, "invalid date/time literal"};
        return text;
    }

    // \uXXXX after the backslash-u at `at`: one UTF-16 code unit, or a
    // surrogate pair written as two escapes, appended as UTF-8. A lone
    // surrogate is not a character and has no UTF-8 form (RFC 3629 §3).
    void unicode_escape(std::size_t at, std::string& out) {
        unsigned cp = hex4(at);
        if (cp >= 0xDC00 && cp <= 0xDFFF) throw failure{at, "lone low surrogate in \\u escape"};
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(i_, 2) != "\\u")
                throw failure{at, "high surrogate without a low surrogate in \\u escape"};
            i_ += 2;
            unsigned lo = hex4(i_ - 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                throw failure{at, "high surrogate without a low surrogate in \\u escape"};
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    unsigned hex4(std::size_t at) {
        unsigned v = 0;
        for (int k = 0; k < 4; ++k, ++i_) {
            if (i_ >= s_.size() || std::isxdigit(static_cast<unsigned char>(s_[i_])) == 0)
                throw failure{at, "\\u needs four hex digits"};
            char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[i_])));
            v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        return v;
    }

    void skip_space() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_])) != 0) ++i_;
    }

    std::string quoted(char q) {
        std::size_t start = i_++;
        std::string out;
        while (i_ < s_.size() && s_[i_] != q) {
            char c = s_[i_++];
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (i_ >= s_.size()) break;
            char e = s_[i_++];
            switch (e) {
                case 'n':
                    out.push_back('\n');
                    break;
                case 't':
                    out.push_back('\t');
                    break;
                case 'r':
                    out.push_back('\r');
                    break;
                case 'f':
                    out.push_back('\f');
                    break;
                case 'u':
                    unicode_escape(i_ - 2, out);
                    break;
                default:
                    out.push_back(e);
                    break;  // \' \" \` \\ \/
            }
        }
        if (i_ >= s_.size()) throw failure{start, "unterminated quoted text"};
        ++i_;
        return out;
    }

    std::string number() {
        std::size_t b = i_;
        while (i_ < s_.size() && digit(s_[i_])) ++i_;
        // A '.' is a decimal point only when a digit follows: `1.toString()` invokes.
        if (i_ + 1 < s_.size() && s_[i_] == '.' && digit(s_[i_ + 1])) {
            ++i_;
            while (i_ < s_.size() && digit(s_[i_])) ++i_;
        }
        return std::string(s_.substr(b, i_ - b));
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

using node_ptr = std::unique_ptr<node>;

node_ptr make(node_kind k, std::size_t offset, std::string text = {}) {
    auto n = std::make_unique<node>();
    n->kind = k;
    n->offset = offset;
    n->text = std::move(text);
    return n;
}

// The evaluator and the AST's destructor recurse once per tree level, so
// the tree's depth is bounded, not only the parser's nesting: `a.b.c...`
// and `1+1+...` chains grow the tree without nesting.
constexpr std::size_t max_tree_depth = 200;

void attach(node& parent, node_ptr child) {
    if (child) {
        parent.depth = std::max(parent.depth, child->depth + 1);
        if (parent.depth > max_tree_depth) throw failure{parent.offset, "expression nested too deeply"};
    }
    parent.children.push_back(std::move(child));
}

node_ptr make_binary(std::string op, std::size_t offset, node_ptr l, node_ptr r) {
    auto n = make(node_kind::binary, offset, std::move(op));
    attach(*n, std::move(l));
    attach(*n, std::move(r));
    return n;
}

class parser {
public:
    explicit parser(std::vector<token> t) : t_(std::move(t)) {}

    node_ptr run() {
        auto e = expression();
        if (peek().kind != tok::end) throw failure{peek().offset, "unexpected '" + peek().text + "'"};
        return e;
    }

private:
    const token& peek() const { return t_[p_]; }
    const token& next() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }

    // Keywords are operators only where an operator may stand; elsewhere
    // `and` or `div` would be a member name (FHIRPath allows that).
    bool at_word(std::string_view w) const { return peek().kind == tok::identifier && peek().text == w; }
    bool at_symbol(std::string_view s) const { return peek().kind == tok::symbol && peek().text == s; }

    void expect_symbol(std::string_view s) {
        if (!at_symbol(s)) {
            throw failure{peek().offset, "expected '" + std::string(s) + "'" +
                                             (peek().kind == tok::end ? " before the end"
                                                                      : ", found '" + peek().text + "'")};
        }
        next();
    }

    // Nesting is bounded so that a pathological definition fails with a
    // parse error instead of overflowing the stack; real views nest a few levels.
    node_ptr expression() {
        if (++depth_ > max_depth) throw failure{peek().offset, "expression nested too deeply"};
        auto e = implies();
        --depth_;
        return e;
    }

    node_ptr implies() {
        auto l = or_expr();
        while (at_word("implies")) {
            auto off = next().offset;
            l = make_binary("implies", off, std::move(l), or_expr());
        }
        return l;
    }
    node_ptr or_expr() {
        auto l = and_expr();
        while (at_word("or") || at_word("xor")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), and_expr());
        }
        return l;
    }
    node_ptr and_expr() {
        auto l = membership();
        while (at_word("and")) {
            auto off = next().offset;
            l = make_binary("and", off, std::move(l), membership());
        }
        return l;
    }
    node_ptr membership() {
        auto l = equality();
        while (at_word("in") || at_word("contains")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), equality());
        }
        return l;
    }
    node_ptr equality() {
        auto l = comparison();
        while (at_symbol("=") || at_symbol("!=") || at_symbol("~") || at_symbol("!~")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), comparison());
        }
        return l;
    }
    node_ptr comparison() {
        auto l = union_expr();
        while (at_symbol("<") || at_symbol("<=") || at_symbol(">") || at_symbol(">=")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), union_expr());
        }
        return l;
    }
    node_ptr union_expr() {
        auto l = type_expr();
        while (at_symbol("|")) {
            auto off = next().offset;
            l = make_binary("|", off, std::move(l), type_expr());
        }
        return l;
    }
    // `x is T`, `x as T`: the right side is a type specifier, a name with an
    // optional namespace (FHIR.Quantity, System.String), not an expression.
    node_ptr type_expr() {
        auto l = additive();
        while (at_word("is") || at_word("as")) {
            const auto& t = next();
            std::string op = t.text;
            std::size_t off = t.offset;
            if (peek().kind != tok::identifier)
                throw failure{peek().offset, "expected a type name after '" + op + "'"};
            const token& first = next();
            auto type = make(node_kind::member, first.offset, first.text);
            type->children.emplace_back();
            if (at_symbol(".")) {
                next();
                if (peek().kind != tok::identifier)
                    throw failure{peek().offset, "expected a type name after '.'"};
                const token& second = next();
                auto qualified = make(node_kind::member, second.offset, second.text);
                attach(*qualified, std::move(type));
                type = std::move(qualified);
            }
            l = make_binary(op, off, std::move(l), std::move(type));
        }
        return l;
    }
    node_ptr additive() {
        auto l = multiplicative();
        while (at_symbol("+") || at_symbol("-") || at_symbol("&")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), multiplicative());
        }
        return l;
    }
    node_ptr multiplicative() {
        auto l = unary();
        while (at_symbol("*") || at_symbol("/") || at_word("div") || at_word("mod")) {
            const auto& t = next();
            std::string op = t.text;
            l = make_binary(op, t.offset, std::move(l), unary());
        }
        return l;
    }
    node_ptr unary() {
        if (at_symbol("-") || at_symbol("+")) {
            if (++depth_ > max_depth) throw failure{peek().offset, "expression nested too deeply"};
        }
        if (at_symbol("-")) {
            auto off = next().offset;
            auto n = make(node_kind::unary_minus, off);
            attach(*n, unary());
            --depth_;
            return n;
        }
        if (at_symbol("+")) {
            next();
            auto e = unary();
            --depth_;
            return e;
        }
        return postfix();
    }

    node_ptr postfix() {
        auto e = term();
        for (;;) {
            if (at_symbol(".")) {
                next();
                if (peek().kind != tok::identifier) throw failure{peek().offset, "expected a name after '.'"};
                e = invocation(std::move(e));
            } else if (at_symbol("[")) {
                auto off = next().offset;
                auto n = make(node_kind::indexer, off);
                attach(*n, std::move(e));
                attach(*n, expression());
                expect_symbol("]");
                e = std::move(n);
            } else {
                return e;
            }
        }
    }

    // A name, or a name(args), applied to `target` (null: the focus).
    node_ptr invocation(node_ptr target) {
        const token& name = next();
        std::string text = name.text;
        std::size_t off = name.offset;
        if (!at_symbol("(")) {
            auto n = make(node_kind::member, off, std::move(text));
            attach(*n, std::move(target));
            return n;
        }
        next();
        auto n = make(node_kind::function, off, std::move(text));
        attach(*n, std::move(target));
        if (!at_symbol(")")) {
            attach(*n, expression());
            while (at_symbol(",")) {
                next();
                attach(*n, expression());
            }
        }
        expect_symbol(")");
        return n;
    }

    node_ptr term() {
        const token& t = peek();
        switch (t.kind) {
            case tok::end:
                throw failure{t.offset, "expression ends too early"};
            case tok::string: {
                auto n = make(node_kind::string_literal, t.offset, t.text);
                next();
                return n;
            }
            case tok::date: {
                auto n = make(node_kind::date_literal, t.offset, t.text);
                n->temporal = t.temporal;
                next();
                return n;
            }
            case tok::constant: {
                auto n = make(node_kind::constant_ref, t.offset, t.text);
                next();
                return n;
            }
            case tok::this_ref: {
                auto n = make(node_kind::this_ref, t.offset);
                next();
                return n;
            }
            case tok::number:
                return number(next());
            case tok::identifier:
                if (t.text == "true" || t.text == "false") {
                    auto n = make(node_kind::boolean_literal, t.offset, t.text);
                    n->boolean = t.text == "true";
                    next();
                    return n;
                }
                return invocation(nullptr);
            case tok::symbol:
                if (t.text == "(") {
                    next();
                    auto e = expression();
                    expect_symbol(")");
                    return e;
                }
                if (t.text == "{") {
                    auto off = next().offset;
                    expect_symbol("}");
                    return make(node_kind::empty_literal, off);
                }
                throw failure{t.offset, "unexpected '" + t.text + "'"};
        }
        throw failure{t.offset, "unexpected token"};
    }

    static node_ptr number(const token& t) {
        if (t.text.find('.') == std::string::npos) {
            auto n = make(node_kind::integer_literal, t.offset, t.text);
            auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), n->integer);
            if (ec != std::errc{}) throw failure{t.offset, "integer out of range"};
            return n;
        }
        auto n = make(node_kind::decimal_literal, t.offset, t.text);
        auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), n->decimal);
        if (ec != std::errc{}) throw failure{t.offset, "bad decimal"};
        return n;
    }

    static constexpr int max_depth = 100;
    std::vector<token> t_;
    std::size_t p_ = 0;
    int depth_ = 0;
};

constexpr std::size_t max_expression_length = 10000;

}  // namespace

parse_result parse(std::string_view expression) {
    parse_result r;
    // Left-associative chains (a.b.c..., 1+1+...) build trees as deep as
    // they are long, and evaluating or freeing them recurses that deep; the
    // length cap bounds that depth. ViewDefinition paths are a line or two.
    if (expression.size() > max_expression_length) {
        r.error = parse_error{max_expression_length,
                              "expression longer than " + std::to_string(max_expression_length) + " bytes"};
        return r;
    }
    try {
        r.ast = parser(lexer(expression).run()).run();
    } catch (const failure& f) {
        r.error = parse_error{f.offset, f.message};
    }
    return r;
}

}  // namespace headachemd::views
