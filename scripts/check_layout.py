#!/usr/bin/env python3
"""The layout rules of docs/architecture.md, checked on the working tree (a CTest test):

- no function in host/ or python/ is longer than 100 lines (C++ by brace matching, Python by ast);
- method names are compared with string literals in at most 8 lines of host/ and python/
  (the registry's own, host/calibrators/);
- includes point down the layers: common <- kernels <- host/io <- host/metrics <- host/sweep <-
  host/calibrators <- host/segmentation <- host/experiment <- host/cli (a file includes its own
  layer and the ones before it; so nothing in kernels/ or common/ includes host/);
- at most two source files stand directly in host/.

Prints each violation and exits 1; `--list N` also prints the N longest functions.
Usage: python3 scripts/check_layout.py [--root DIR] [--list N]
"""
import argparse
import ast
import os
import re
import sys

MAX_FUNCTION_LINES = 100
# The layers, lowest first (docs/architecture.md).
LAYERS = ["common", "kernels", "host/io", "host/metrics", "host/sweep", "host/calibrators", "host/segmentation",
          "host/experiment", "host/cli"]
INCLUDE = re.compile(r'\s*#\s*include\s*"([a-z_]+(?:/[a-z_]+)?)/')
MAX_METHOD_COMPARISONS = 8
CPP_EXTENSIONS = (".cpp", ".hpp", ".cu", ".cuh", ".h")
CONTROL = re.compile(r"^(if|for|while|switch|catch|do|else|try)\b")
AGGREGATE = re.compile(r"\b(namespace|class|struct|union|enum)\b")


def strip_cpp(text):
    """The text with comments, string and character literals blanked (newlines kept) and
    preprocessor lines removed, so that braces and parentheses can be counted."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + (m.group(1) if m else "") + '"', i)
            j = n if end < 0 else end + len(m.group(1) if m else "") + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j, n - 1) - i + 1))
            i = j + 1
        else:
            out.append(c)
            i += 1
    lines = "".join(out).split("\n")
    return "\n".join("" if line.lstrip().startswith("#") else line for line in lines)


def drop_template_prefix(text):
    """`text` without leading `template <...>` parameter lists (they may name `class`)."""
    text = text.lstrip()
    while text.startswith("template"):
        depth, k = 0, len("template")
        while k < len(text):
            if text[k] == "<":
                depth += 1
            elif text[k] == ">":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        text = text[k + 1:].lstrip()
    return text


def is_function_head(head):
    """Whether the text before a '{' (at namespace or class scope) opens a function body."""
    head = " ".join(head.split())
    if not head or CONTROL.match(head) or head.endswith("="):
        return False
    if "(" not in head:
        return False
    # The part after the parameter list: qualifiers, a trailing return type or an initializer list.
    depth, close = 0, -1
    for k, ch in enumerate(head):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and close < 0:
                close = k
    if close < 0:
        return False
    before = drop_template_prefix(head[: head.index("(")])
    if AGGREGATE.search(before) and not before.rstrip().endswith("operator"):
        return False
    return True


def cpp_functions(path):
    """(name, first line, length in lines) of every function defined at namespace or class scope."""
    text = strip_cpp(open(path, encoding="utf-8", errors="replace").read())
    functions = []
    stack = []  # 'scope' (namespace, class, ...) or ('function', name, line) or 'other'
    head_start, head = None, []
    line = 1
    in_function = 0  # brace depth inside the current function
    fn = None
    for c in text:
        if c == "\n":
            line += 1
        if in_function:
            if c == "{":
                in_function += 1
            elif c == "}":
                in_function -= 1
                if in_function == 0:
                    functions.append((fn[0], fn[1], line - fn[1] + 1))
                    head, head_start = [], None
            continue
        if c == "{":
            h = "".join(head)
            if is_function_head(h):
                name = h[: h.index("(")].split()[-1] if h[: h.index("(")].split() else "?"
                fn = (name, head_start or line)
                in_function = 1
            else:
                stack.append("scope")
            head, head_start = [], None
        elif c == "}":
            if stack:
                stack.pop()
            head, head_start = [], None
        elif c == ";":
            head, head_start = [], None
        else:
            if head_start is None and not c.isspace():
                head_start = line
            # A label or access specifier ends the head ("public:", but not "::" or an init list).
            head.append(c)
    return functions


def python_functions(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    return [(node.name, node.lineno, node.end_lineno - node.lineno + 1)
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def source_files(root, folder, extensions):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for f in sorted(files):
            if f.endswith(extensions):
                yield os.path.join(dirpath, f)


def layer_of(relpath):
    """The index in LAYERS of the layer holding `relpath` (or of the layer an include names),
    or None outside them."""
    for i, layer in enumerate(LAYERS):
        if relpath == layer or relpath.startswith(layer + "/"):
            return i
    return None


def include_direction(root):
    """One problem per include of a higher layer than the including file's."""
    problems = []
    for folder in ("common", "kernels", "host"):
        for path in source_files(root, folder, CPP_EXTENSIONS):
            rel = os.path.relpath(path, root)
            own = layer_of(rel)
            if own is None:
                continue
            for k, text in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
                m = INCLUDE.match(text)
                target = layer_of(m.group(1)) if m else None
                if target is not None and target > own:
                    problems.append(f"{rel}:{k}: {LAYERS[own]}/ includes {LAYERS[target]}/, a higher layer: "
                                    f"{text.strip()}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--list", type=int, default=0, help="also print the N longest functions")
    args = parser.parse_args()
    root = args.root
    problems = []

    lengths = []
    for folder in ("host", "python"):
        for path in source_files(root, folder, CPP_EXTENSIONS):
            lengths += [(n, os.path.relpath(path, root), name, first) for name, first, n in cpp_functions(path)]
        for path in source_files(root, folder, (".py",)):
            lengths += [(n, os.path.relpath(path, root), name, first) for name, first, n in python_functions(path)]
    for n, path, name, first in sorted(lengths, reverse=True):
        if n > MAX_FUNCTION_LINES:
            problems.append(f"{path}:{first}: function {name} has {n} lines (at most {MAX_FUNCTION_LINES})")
    for n, path, name, first in sorted(lengths, reverse=True)[: args.list]:
        print(f"{n:5d}  {path}:{first}  {name}")

    comparisons = []
    pattern = re.compile(r'method *(==|!=) *"')
    for folder in ("host", "python"):
        for path in source_files(root, folder, CPP_EXTENSIONS + (".py",)):
            for k, text in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
                if pattern.search(text):
                    comparisons.append(f"{os.path.relpath(path, root)}:{k}: {text.strip()}")
    if len(comparisons) > MAX_METHOD_COMPARISONS:
        problems.append(f"{len(comparisons)} lines compare a method name with a string literal (at most "
                        f"{MAX_METHOD_COMPARISONS}; use the registry, host/calibrators/registry.hpp):")
        problems += ["  " + c for c in comparisons]

    problems += include_direction(root)

    top = [f for f in os.listdir(os.path.join(root, "host"))
           if os.path.isfile(os.path.join(root, "host", f)) and f.endswith(CPP_EXTENSIONS)]
    if len(top) > 2:
        problems.append(f"{len(top)} source files directly in host/ (at most 2): {', '.join(sorted(top))}")

    for p in problems:
        print(p)
    print(f"layout: {len(lengths)} functions, {len(comparisons)} method-name comparisons, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
