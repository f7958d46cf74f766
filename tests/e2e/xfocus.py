#!/usr/bin/env python3
"""Moves the X keyboard focus, as a window manager would, for tests/e2e/app.mjs.

    xfocus.py in    the largest viewable top-level window (the app) gets the focus
    xfocus.py out   nothing has it any more: the app's window loses the focus

Xvfb has no window manager, so nothing else ever takes the focus away from the
app; this is how the end-to-end test shows that losing it locks the app. Uses
only libX11 through ctypes (python3 and libx11-6 come with the test's packages).
"""
import ctypes
import sys

x = ctypes.cdll.LoadLibrary("libX11.so.6")
Window = ctypes.c_ulong
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XDefaultRootWindow.restype = Window
x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x.XQueryTree.argtypes = [
    ctypes.c_void_p, Window, ctypes.POINTER(Window), ctypes.POINTER(Window),
    ctypes.POINTER(ctypes.POINTER(Window)), ctypes.POINTER(ctypes.c_uint),
]
x.XSetInputFocus.argtypes = [ctypes.c_void_p, Window, ctypes.c_int, ctypes.c_ulong]
x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
x.XFree.argtypes = [ctypes.c_void_p]


class XWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
        ("border_width", ctypes.c_int), ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
        ("root", Window), ("c_class", ctypes.c_int), ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong), ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int), ("map_state", ctypes.c_int),
        ("all_event_masks", ctypes.c_long), ("your_event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long), ("override_redirect", ctypes.c_int),
        ("screen", ctypes.c_void_p),
    ]


x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, Window, ctypes.POINTER(XWindowAttributes)]

IS_VIEWABLE = 2
REVERT_TO_NONE = 0
CURRENT_TIME = 0


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    d = x.XOpenDisplay(None)
    if not d:
        print("xfocus: cannot open the display", file=sys.stderr)
        return 2
    root = x.XDefaultRootWindow(d)
    if mode == "out":
        # Focus to None: no window has the keyboard, the app's gets FocusOut.
        x.XSetInputFocus(d, 0, REVERT_TO_NONE, CURRENT_TIME)
        x.XSync(d, 0)
        return 0
    if mode != "in":
        print("usage: xfocus.py in|out", file=sys.stderr)
        return 2
    r, p = Window(), Window()
    children = ctypes.POINTER(Window)()
    n = ctypes.c_uint()
    x.XQueryTree(d, root, ctypes.byref(r), ctypes.byref(p), ctypes.byref(children), ctypes.byref(n))
    best, area = 0, 0
    for i in range(n.value):
        a = XWindowAttributes()
        if x.XGetWindowAttributes(d, children[i], ctypes.byref(a)) and a.map_state == IS_VIEWABLE:
            if a.width * a.height > area and not a.override_redirect:
                best, area = children[i], a.width * a.height
    if children:
        x.XFree(children)
    if not best:
        print("xfocus: no viewable window", file=sys.stderr)
        return 1
    x.XSetInputFocus(d, best, REVERT_TO_NONE, CURRENT_TIME)
    x.XSync(d, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
