"""ghapt: a signed APT repository whose .deb files live as GitHub Release assets."""

__version__ = "0.1.0"
