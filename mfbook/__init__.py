"""mfbook: the mean-field ensemble of sub-networks and generalized backprop, as a textbook.

C. Li and H. Huang, "Learning credit assignment", Phys. Rev. Lett. 125, 178301 (2020).
Each module is one step of the book; see the chapter named in its docstring.
"""

__version__ = "0.1.0"
