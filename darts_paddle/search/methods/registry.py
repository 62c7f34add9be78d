"""The search methods and loss terms there are.  Each declares, in its own module, its name,
its command-line flags (help and defaults), its compatibility rules and how it is built, and
registers itself here; `make_method`, the "search methods" flags of train_search.py and the
flags a search checkpoint keeps are all read from here, so adding a method or a loss term
is one new module (the package's __init__ imports every module it holds)."""

import dataclasses

DEFAULT_METHOD = "darts"

# name -> class, in registration order: the order of --method's choices and of the flags
method_classes = {}
loss_term_classes = {}


class Flag:
    """One command-line option of a method or loss term: `name` is the attribute argparse
    sets and the keyword its class is built with; `kwargs` are add_argument's.  Without a
    `default` the flag defaults to its owner's dataclass field of the same name, so the
    default is written once."""

    def __init__(self, name, help, **kwargs):
        self.name, self.help, self.kwargs = name, help, kwargs

    def default(self, owner):
        if "default" in self.kwargs:
            return self.kwargs["default"]
        fields = {f.name: f for f in dataclasses.fields(owner)}
        if self.name not in fields:
            raise TypeError(f"--{self.name} of {owner.__name__}: no dataclass field of that "
                            "name to take its default from; give default=")
        return fields[self.name].default

    def add_to(self, group, owner):
        group.add_argument("--" + self.name, help=self.help,
                           **{**self.kwargs, "default": self.default(owner)})


def defaults(owner):
    """{flag: its default} of a method or loss term class."""
    return {f.name: f.default(owner) for f in owner.flags}


def differs_from_defaults(owner, values):
    """Does any of the flag `values` ({flag: value}) differ from its default?"""
    return any(value != defaults(owner)[flag] for flag, value in values.items())


def register_method(cls):
    """Class decorator: make a search method (a subclass of darts.Darts) known by its `name`."""
    _register(method_classes, cls, "method")
    return cls


def register_loss_term(cls):
    """Class decorator: make a loss term (a subclass of terms.LossTerm) known by its `name`."""
    _register(loss_term_classes, cls, "loss term")
    return cls


def _register(table, cls, kind):
    if cls.name in table:
        raise ValueError(f"{kind} {cls.name!r} registered twice ({table[cls.name].__name__}, "
                         f"{cls.__name__})")
    taken = {f.name: owner for owner in owners() for f in owner.flags}
    for flag in cls.flags:
        if flag.name in taken:
            raise ValueError(f"--{flag.name} of {kind} {cls.name!r} is already "
                             f"{taken[flag.name].name!r}'s")
        flag.default(cls)  # a flag without a default fails here, not in the parser
    table[cls.name] = cls


def owners():
    """Every registered method, then every loss term, each in registration order."""
    return [*method_classes.values(), *loss_term_classes.values()]


def flag_names():
    """The flags of every registered method and loss term, in registration order."""
    return tuple(f.name for owner in owners() for f in owner.flags)


def add_method_flags(parser):
    """The "search methods" argument group: --method with the registered methods as its
    choices, and every method's and loss term's flags."""
    g = parser.add_argument_group("search methods")
    g.add_argument("--method", default=DEFAULT_METHOD, choices=tuple(method_classes),
                   help="; ".join(f"{name}: {cls.summary}" for name, cls in method_classes.items()
                                  if cls.summary))
    for owner in owners():
        for flag in owner.flags:
            flag.add_to(g, owner)


def make_method(method=DEFAULT_METHOD, layout=None, **flags):
    """The method of the command-line flags: `method` and the flags of the registered methods
    and loss terms (those not given take their defaults), on the cells of `layout`
    (layout.Layout; None: the DARTS space's).  A method's options in use under
    another --method either join it (the other method is in their class's `extends`: that
    class then runs) or are refused; each loss term in use is attached (`loss_terms`) unless
    it refuses the method.  ValueError on a contradiction, its message naming the fix."""
    if method not in method_classes:
        raise ValueError(f"unknown method {method!r}; one of {tuple(method_classes)}")
    unknown = set(flags) - set(flag_names())
    if unknown:
        raise TypeError(f"make_method got flags no method or loss term has: {sorted(unknown)}")

    def own(owner):
        return {f.name: flags[f.name] for f in owner.flags if f.name in flags}

    named = chosen = method_classes[method]
    for other in method_classes.values():
        if other is named or not other.in_use(**own(other)):
            continue
        if method not in other.extends:
            raise ValueError(other.refusal(method, **own(other)))
        if chosen is not named:
            raise ValueError(f"the options of {chosen.name} and {other.name} do not combine")
        chosen = other
    terms = []
    for term_class in loss_term_classes.values():
        if term_class.in_use(**own(term_class)):
            term = term_class(**own(term_class))
            refusal = term.refusal(method)
            if refusal:
                raise ValueError(refusal)
            terms.append(term)
    instance = chosen.build(method, **own(chosen))
    instance.loss_terms = tuple(terms)
    if layout is not None:
        if instance.spaces is not None and layout.name not in instance.spaces:
            raise ValueError(f"--method {method} has no meaning in --space {layout.name}: its "
                             f"rules choose among a node's inputs, which this space keeps "
                             f"all of (docs/methods.md); use --method darts or pcdarts there")
        instance.layout = layout
    return instance
