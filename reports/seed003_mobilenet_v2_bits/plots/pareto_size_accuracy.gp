# made by qlab; run `gnuplot pareto_size_accuracy.gp` here to redraw
DATA = "pareto_size_accuracy.dat"
set title "Weight bytes against accuracy, 8-bit activations: uniform widths and mixed precision"
set xlabel "model bytes"
set ylabel "accuracy %"
set terminal pngcairo size 900,540 noenhanced
set output "pareto_size_accuracy.png"
set key outside right
set grid
plot DATA index 0 using 1:2 with linespoints lw 2 pt 7 title "uniform, nearest", \
     DATA index 1 using 1:2 with linespoints lw 2 pt 7 title "uniform, bias correction", \
     DATA index 2 using 1:2 with linespoints lw 2 pt 7 title "uniform, MSE ranges + bias correction", \
     DATA index 3 using 1:2 with linespoints lw 2 pt 7 title "uniform, CLE + MSE ranges + bias correction", \
     DATA index 4 using 1:2 with linespoints lw 2 pt 7 title "mixed, bias correction", \
     DATA index 5 using 1:2 with linespoints lw 2 pt 7 title "uniform, AdaRound + MSE ranges + bias correction"
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "pareto_size_accuracy.svg"
replot
