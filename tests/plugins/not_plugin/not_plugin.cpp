// A shared library that is not a qlab plugin.
extern "C" int not_a_qlab_plugin() { return 42; }
