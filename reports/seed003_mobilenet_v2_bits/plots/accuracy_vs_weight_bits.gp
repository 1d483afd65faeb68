# made by qlab; run `gnuplot accuracy_vs_weight_bits.gp` here to redraw
DATA = "accuracy_vs_weight_bits.dat"
set title "Accuracy against weight bits, rounding to nearest"
set xlabel "weight bits"
set ylabel "accuracy %"
set terminal pngcairo size 900,540 noenhanced
set output "accuracy_vs_weight_bits.png"
set logscale x 2
set key outside right
set grid
plot DATA index 0 using 1:2 with linespoints lw 2 pt 7 title "1", \
     DATA index 1 using 1:2 with linespoints lw 2 pt 7 title "2", \
     DATA index 2 using 1:2 with linespoints lw 2 pt 7 title "4", \
     DATA index 3 using 1:2 with linespoints lw 2 pt 7 title "8", \
     DATA index 4 using 1:2 with linespoints lw 2 pt 7 title "16"
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "accuracy_vs_weight_bits.svg"
replot
